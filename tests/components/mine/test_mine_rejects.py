"""Bad input goes to rejects with its reason, good samples stay, and a re-run reuses finished shards."""

import json
import shutil
from dataclasses import replace

import pandas as pd
import pyarrow.parquet as pq
import pytest

from components.mine import MinerConfig, mine_dataset
from components.mine.captions import CaptionsError, load_captions


@pytest.fixture()
def messy(embedded, tmp_path):
    """Four good clips plus: a truncated video, garbage bytes, an empty caption, a caption with no
    entities and a caption whose video is missing."""
    videos = tmp_path / "videos"
    videos.mkdir()
    good = [json.loads(line) for line in embedded.captions.read_text().splitlines()][:4]
    for record in good:
        shutil.copy(embedded.videos / record["file"], videos / record["file"])
    data = (embedded.videos / "emb-00005.mp4").read_bytes()
    (videos / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (videos / "garbage.mp4").write_bytes(b"not a video at all" * 50)
    shutil.copy(embedded.videos / "emb-00006.mp4", videos / "silent.mp4")
    shutil.copy(embedded.videos / "emb-00007.mp4", videos / "vague.mp4")
    records = good + [
        {"file": "truncated.mp4", "caption": "a cat moves across the grass"},
        {"file": "garbage.mp4", "caption": "a cat moves across the grass"},
        {"file": "silent.mp4", "caption": "   "},
        {"file": "vague.mp4", "caption": "something happens quickly"},
        {"file": "missing.mp4", "caption": "a dog runs on the beach"},
    ]
    captions = tmp_path / "captions.jsonl"
    captions.write_text("".join(json.dumps(r) + "\n" for r in records))
    return videos, captions, {r["file"].removesuffix(".mp4") for r in good}


def test_bad_samples_are_rejected_with_reasons_and_good_ones_kept(messy, tmp_path):
    videos, captions, good = messy
    summary = mine_dataset(str(videos), str(captions), str(tmp_path / "out"), MinerConfig(workers=1, shard_size=3),
                           progress=False)  # fmt: skip
    rejects = pd.read_parquet(summary.rejects_path).set_index("sample_id")
    manifest = pd.read_parquet(summary.manifest_path)
    assert set(manifest.sample_id) | set(rejects.index) == good | {
        "truncated",
        "garbage",
        "silent",
        "vague",
        "missing",
    }
    assert (
        rejects.loc["truncated", "stage"] == "video" and "truncated.mp4" in rejects.loc["truncated", "reason"]
    )
    assert rejects.loc["garbage", "stage"] == "video" and "unreadable" in rejects.loc["garbage", "reason"]
    assert rejects.loc["missing", "stage"] == "video" and "does not exist" in rejects.loc["missing", "reason"]
    assert tuple(rejects.loc["silent", ["stage", "reason"]]) == (
        "caption",
        f"{videos}/silent.mp4: empty caption",
    )
    assert rejects.loc["vague", "stage"] == "entities" and "no entity words" in rejects.loc["vague", "reason"]
    # Every good clip is either kept or refused for a segmentation reason, never lost to a neighbour.
    assert set(manifest.sample_id) <= good and len(manifest) >= 3
    assert set(rejects.loc[list(good - set(manifest.sample_id)), "stage"]) <= {"segmentation"}
    assert json.loads(summary.dataset_json.read_text())["rejects_by_stage"]["video"] == 3
    for sample_id, row in rejects.iterrows():  # the empty and the entity-less caption used not to say which
        assert f"{sample_id}.mp4" in row["reason"], row["reason"]


def test_rerun_skips_finished_shards_and_redoes_changed_ones(messy, tmp_path):
    """The first run uses two worker processes; `workers` does not change what a shard produces, so the
    serial re-runs reuse its shards."""
    videos, captions, good = messy
    out = tmp_path / "out"
    config = MinerConfig(workers=1, shard_size=3)
    first = mine_dataset(str(videos), str(captions), str(out), replace(config, workers=2), progress=False)
    assert first.samples + first.rejected == 9 and first.samples >= 3
    done = sorted((out / "shards").glob("*.done"))
    stamps = [p.stat().st_mtime_ns for p in done]
    again = mine_dataset(str(videos), str(captions), str(out), config, progress=False)
    assert (first.shards, again.shards_skipped) == (3, 3)
    assert [p.stat().st_mtime_ns for p in done] == stamps
    assert pq.read_table(again.manifest_path).equals(pq.read_table(first.manifest_path))
    # A changed caption invalidates only its shard.
    lines = captions.read_text().splitlines()
    lines[-1] = json.dumps({"file": "missing.mp4", "caption": "a dog runs across the sand"})
    captions.write_text("\n".join(lines) + "\n")
    third = mine_dataset(str(videos), str(captions), str(out), config, progress=False)
    assert third.shards_skipped == 2


def test_captions_formats(tmp_path):
    (tmp_path / "c.csv").write_text('file,caption\na.mp4,"a cat, sleeping"\nb.mp4,\n')
    assert [(r.file, r.caption) for r in load_captions(tmp_path / "c.csv").records] == [
        ("a.mp4", "a cat, sleeping"), ("b.mp4", "")]  # fmt: skip
    msrvtt = {"videos": [{"video_id": "video1"}, {"video_id": "video2"}],
              "sentences": [{"video_id": "video1", "caption": "a man sings"},
                            {"video_id": "video1", "caption": "someone sings"}]}  # fmt: skip
    (tmp_path / "m.json").write_text(json.dumps(msrvtt))
    records = load_captions(tmp_path / "m.json").records
    assert [(r.file, r.caption) for r in records] == [("video1.mp4", "a man sings"), ("video2.mp4", "")]
    (tmp_path / "bad.jsonl").write_text('{"file": "a.mp4"}\n{oops\n')
    loaded = load_captions(tmp_path / "bad.jsonl")
    assert [r.file for r in loaded.records] == ["a.mp4"] and loaded.problems[0].where.endswith("bad.jsonl:2")
    with pytest.raises(CaptionsError, match="must be .jsonl"):
        (tmp_path / "c.txt").write_text("x")
        load_captions(tmp_path / "c.txt")
