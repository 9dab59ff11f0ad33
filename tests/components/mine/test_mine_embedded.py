"""Mining the embedded dataset: the manifest follows the contract and masks match the ground truth."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from components.embedded.measure import measure_mining
from components.mine import MaskFolderSegmenter, MinerConfig, mine_dataset


def test_manifest_follows_the_contract(mined):
    manifest = pd.read_parquet(mined.manifest_path)
    root = Path(mined.out)
    assert mined.samples == len(manifest) >= 7
    assert manifest.sample_id.is_unique and set(manifest.split) <= {"train", "val", "test"}
    for row in manifest.itertuples():
        assert row.caption and (root / row.video_path).is_file() and (root / row.background_path).is_file()
        assert hashlib.sha256((root / row.video_path).read_bytes()).hexdigest() == row.sha256
        assert (row.num_frames, row.width, row.height) == (16, 64, 64)
        assert row.clip_end - row.clip_start == 16
        kinds = [e["kind"] for e in row.entities]
        assert kinds.count("background") == 1 and len(kinds) >= 2
        for entity in row.entities:
            assert row.caption[entity["token_start"] : entity["token_end"]] == entity["word"]
            assert len(entity["mask_paths"]) == len(entity["boxes"]) == len(entity["areas"]) == 3
            assert all(0 < a < 1 for a in entity["areas"])
            assert 1 <= len(entity["reference_paths"]) <= 3
            assert all((root / p).is_file() for p in [*entity["mask_paths"], *entity["reference_paths"]])
    meta = json.loads(mined.dataset_json.read_text())
    assert meta["config"]["segmenter"] == "motion" and meta["counts"]["samples"] == mined.samples


def test_masks_and_backgrounds_match_ground_truth(embedded, mined):
    entities, samples = measure_mining(embedded.root, mined.out)
    # Measured on these 8 clips (7 kept): mean IoU 0.86 (subjects 0.87, objects 0.81, backgrounds 0.89),
    # foreground 0.84, every entity bound to its own word, background PSNR 36.1 dB.
    assert entities.iou.mean() > 0.82, entities
    assert entities[entities.kind != "background"].iou.mean() > 0.78, entities
    assert entities[entities.kind != "background"].bound.all(), entities
    assert samples.background_psnr.mean() > 33, samples


def test_references_come_from_outside_the_clip(embedded, mined):
    manifest = pd.read_parquet(mined.manifest_path)
    for row in manifest.itertuples():
        # 24-frame videos, 16-frame clip in the middle: frames 0-3 and 20-23 are left for references.
        assert (row.clip_start, row.clip_end) == (4, 20)


def test_existing_masks_backend_reproduces_ground_truth(embedded, tmp_path):
    config = MinerConfig(workers=1, segmenter="masks", masks_dir=str(embedded.ground_truth / "masks"))
    summary = mine_dataset(
        str(embedded.videos), str(embedded.captions), str(tmp_path), config, progress=False
    )
    entities, _ = measure_mining(embedded.root, tmp_path)
    foreground = entities[entities.kind != "background"]
    assert summary.samples >= 6
    assert np.allclose(foreground.iou, 1.0)
    assert MaskFolderSegmenter(embedded.ground_truth / "masks").name == "masks"
