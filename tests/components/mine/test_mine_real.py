"""The miner on real footage (../shared/data/clips, read in place) and entity words of real captions."""

import json

import numpy as np
import pandas as pd
import pytest

from components.ground_truth import load_mask
from components.mine import EntityExtractionError, MinerConfig, RuleExtractor, mine_dataset, validate_entities


def test_rule_extractor_matches_the_hand_labelled_entities(real_clips):
    extractor = RuleExtractor()
    for line in (real_clips / "manifest.jsonl").read_text().splitlines():
        record = json.loads(line)
        words = extractor.extract(record["caption"])
        assert {(w.word, w.kind) for w in words} == {(e["word"], e["kind"]) for e in record["entities"]}, (
            record
        )
        assert all(record["caption"][w.start : w.end] == w.word for w in words)


def test_rule_extractor_skips_clothing_body_parts_and_compound_modifiers():
    words = RuleExtractor().extract("a man in a gray shirt kicks a soccer ball with his feet at a brick wall")
    assert [(w.word, w.kind) for w in words] == [
        ("man", "subject"),
        ("ball", "object"),
        ("wall", "background"),
    ]
    with pytest.raises(EntityExtractionError, match="no entity words"):
        RuleExtractor().extract("it is raining quickly")


def test_validation_rejects_words_not_in_the_caption_and_bad_kinds():
    caption = "Two Dogs chase a ball"
    words = validate_entities(
        caption, {"entities": [{"word": "dogs", "kind": "subject"}, {"word": "ball", "kind": "object"}]}
    )
    assert [(w.word, w.start, w.end) for w in words] == [("Dogs", 4, 8), ("ball", 17, 21)]
    for bad, message in [
        ([{"word": "cat", "kind": "subject"}], "does not occur"),
        ([{"word": "dog", "kind": "subject"}], "does not occur"),  # only part of "Dogs"
        ([{"word": "ball", "kind": "thing"}], "kind 'thing'"),
        ([], "non-empty list"),
        ([["ball", "object"]], "not an object"),
    ]:
        with pytest.raises(EntityExtractionError, match=message):
            validate_entities(caption, bad)


def test_real_static_camera_clip_is_mined(real_clips, tmp_path):
    captions = tmp_path / "captions.jsonl"
    record = next(json.loads(line) for line in (real_clips / "manifest.jsonl").read_text().splitlines()
                  if line and json.loads(line)["file"] == "ball_juggle.mp4")  # fmt: skip
    captions.write_text(json.dumps({"file": record["file"], "caption": record["caption"]}) + "\n")
    config = MinerConfig(workers=1, max_side=160, frame_stride=2)
    summary = mine_dataset(str(real_clips), str(captions), str(tmp_path / "out"), config, progress=False)
    assert (summary.samples, summary.rejected) == (1, 0), pd.read_parquet(summary.rejects_path).to_dict(
        "records"
    )
    row = pd.read_parquet(summary.manifest_path).iloc[0]
    assert (row.width, row.height, row.num_frames) == (160, 90, 16)
    assert row.clip_end - row.clip_start == 31 and row.source.endswith("ball_juggle.mp4")
    man = next(e for e in row.entities if e["word"] == "man")
    masks = [load_mask(summary.out / p) for p in man["mask_paths"]]
    # The juggler is a small, upright figure: a few percent of the frame, taller than wide.
    assert all(0.005 < m.mean() < 0.2 for m in masks)
    ys, xs = np.nonzero(masks[1])
    assert np.ptp(ys) > np.ptp(xs)
    assert len(man["reference_paths"]) == 3


def test_moving_camera_clip_is_refused_with_the_reason(real_clips, tmp_path):
    captions = tmp_path / "captions.jsonl"
    captions.write_text(
        json.dumps({"file": "kitten_cushion.mp4", "caption": "a kitten rolls on a cushion"}) + "\n"
    )
    config = MinerConfig(workers=1, max_side=128, frame_stride=2)
    summary = mine_dataset(str(real_clips), str(captions), str(tmp_path / "out"), config, progress=False)
    reject = pd.read_parquet(summary.rejects_path).iloc[0]
    assert summary.samples == 0 and reject.stage == "segmentation" and "camera moves" in reject.reason
