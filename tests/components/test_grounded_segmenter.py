"""The one GroundingDINO + SAM segmenter, loaded from folders saved the way published checkpoints are: its
thresholds decide what is kept, and evaluation and mining run the same network on the same frames."""

import numpy as np

from components.evaluate.evaluators import EvaluatorConfig, EvaluatorSuite
from components.mine import MinerConfig
from components.mine.grounded_sam import GroundedSamSegmenter

FRAMES = (np.random.default_rng(0).random((2, 48, 96, 3)) * 255).astype(np.uint8)


def test_evaluation_and_mining_run_one_segmenter_whose_thresholds_decide(grounded_sam_dirs):
    grounding, sam = map(str, grounded_sam_dirs)
    sides = dict(grounding_short_side=128, grounding_max_side=128)  # what the saved processor says
    config = EvaluatorConfig(
        grounding_dino=grounding, sam=sam, box_threshold=0.0, mask_threshold=-1.0, **sides
    )
    evaluation = EvaluatorSuite(config).segmenter
    mined = MinerConfig(segmenter="grounded-sam", grounding_dir=grounding, sam_dir=sam, box_threshold=0.0)
    mining = GroundedSamSegmenter.from_config(mined)
    assert "random" not in evaluation.model_id
    assert mining.segmenter.boxes(FRAMES, ["cat"]) == evaluation.boxes(FRAMES, ["cat"])
    found = evaluation.boxes(FRAMES, ["cat", "rocket"])
    assert len(found) == 2 and any(found)
    for frame, frame_boxes in zip(FRAMES, found, strict=True):
        for (x0, y0, x1, y1), score in frame_boxes.values():
            assert -1 <= x0 <= x1 <= 97 and -1 <= y0 <= y1 <= 49 and 0 < score <= 1
        masks = evaluation.masks(frame, {w: box for w, (box, _) in frame_boxes.items()})
        assert set(masks) == set(frame_boxes) <= {"cat", "rocket"}
        assert all(m.shape == (48, 96) and m.dtype == bool for m in masks.values())
    evaluation.box_threshold = 1.01
    assert evaluation.boxes(FRAMES, ["cat"]) == [{}, {}]
