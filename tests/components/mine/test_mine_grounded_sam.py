"""GroundingDINO + SAM backend plumbing with tiny random-weight models saved to folders (real weights cannot
be downloaded here): thresholds decide what is kept, and the miner turns "nothing found" into a reject."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.mine import MinerConfig, mine_dataset
from components.mine.entities import EntityWord
from components.mine.segment import SegmentRequest


def test_thresholds_decide_what_is_kept(grounded_sam_dirs):
    from components.mine.grounded_sam import GroundedSamSegmenter

    frames = (np.random.default_rng(0).random((3, 48, 96, 3)) * 255).astype(np.uint8)
    words = (EntityWord("cat", "subject", 2, 5), EntityWord("rocket", "object", 12, 18))
    request = SegmentRequest(Path("clip.mp4"), frames, (0, 2), words)
    dino, sam = map(str, grounded_sam_dirs)
    config = MinerConfig(segmenter="grounded-sam", grounding_dir=dino, sam_dir=sam, box_threshold=0.0,
                         mask_score_threshold=-1.0, min_area=0.0, max_area=1.0)  # fmt: skip
    loose = GroundedSamSegmenter.from_config(config)
    found = loose.segment(request)
    assert set(found) == {"cat", "rocket"}
    for per_frame in found.values():
        assert set(per_frame) <= {0, 2}
        for detection in per_frame.values():
            assert detection.mask.shape == (48, 96) and detection.mask.dtype == bool and detection.area > 0
            x0, y0, x1, y1 = detection.box
            assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 48
    assert sum(len(v) for v in found.values()) > 0
    assert dataclasses.replace(loose, max_area=0.0).segment(request) == {"cat": {}, "rocket": {}}
    loose.segmenter.box_threshold = 1.01
    assert loose.segment(request) == {"cat": {}, "rocket": {}}


def test_miner_rejects_when_grounding_finds_nothing(grounded_sam_dirs, embedded, tmp_path):
    captions = tmp_path / "captions.jsonl"
    captions.write_text(embedded.captions.read_text().splitlines()[0] + "\n")
    config = MinerConfig(workers=1, segmenter="grounded-sam", grounding_dir=str(grounded_sam_dirs[0]),
                         sam_dir=str(grounded_sam_dirs[1]), box_threshold=1.01)  # fmt: skip
    summary = mine_dataset(str(embedded.videos), str(captions), str(tmp_path / "out"), config, progress=False)
    reject = pd.read_parquet(summary.rejects_path).iloc[0]
    assert summary.samples == 0 and reject.stage == "segmentation" and "never found" in reject.reason
    assert json.loads(summary.dataset_json.read_text())["config"]["box_threshold"] == 1.01
    with pytest.raises(FileNotFoundError, match="does not exist"):
        shutil.rmtree(tmp_path / "out")
        mine_dataset(str(embedded.videos), str(captions), str(tmp_path / "out"),
                     MinerConfig(workers=1, segmenter="grounded-sam", grounding_dir="/nope", sam_dir="/nope"),
                     progress=False)  # fmt: skip
