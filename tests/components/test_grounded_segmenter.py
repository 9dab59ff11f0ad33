"""The one GroundingDINO + SAM segmenter, loaded from folders saved the way published checkpoints are: its
thresholds decide what is kept, and evaluation and mining run the same network on the same frames."""

import numpy as np

from components.evaluate.evaluators import EvaluatorConfig, EvaluatorSuite
from components.grounded_segmenter import GroundedSegmenter
from components.mine.grounded_sam import GroundedSamSegmenter

SMALL = dict(grounding_short_side=128, grounding_max_side=128)  # what the saved processor says
FRAMES = (np.random.default_rng(0).random((2, 48, 96, 3)) * 255).astype(np.uint8)


def test_boxes_lie_in_the_frame_and_thresholds_decide(grounded_sam_dirs):
    grounding, sam = map(str, grounded_sam_dirs)
    suite = EvaluatorSuite(
        EvaluatorConfig(grounding_dino=grounding, sam=sam, box_threshold=0.0, mask_threshold=-1.0, **SMALL)
    )
    segmenter = suite.segmenter
    assert isinstance(segmenter, GroundedSegmenter) and "random" not in segmenter.model_id
    found = segmenter.boxes(FRAMES, ["cat", "rocket"])
    assert len(found) == 2 and any(found)
    for frame, frame_boxes in zip(FRAMES, found, strict=True):
        assert set(frame_boxes) <= {"cat", "rocket"}
        for (x0, y0, x1, y1), score in frame_boxes.values():
            assert -1 <= x0 <= x1 <= 97 and -1 <= y0 <= y1 <= 49 and 0 < score <= 1
        masks = segmenter.masks(frame, {w: box for w, (box, _) in frame_boxes.items()})
        assert set(masks) == set(frame_boxes)
        assert all(m.shape == (48, 96) and m.dtype == bool for m in masks.values())
    segmenter.box_threshold = 1.01
    assert segmenter.boxes(FRAMES, ["cat"]) == [{}, {}]


def test_evaluation_and_mining_share_the_segmenter(grounded_sam_dirs):
    grounding, sam = map(str, grounded_sam_dirs)
    mining = GroundedSamSegmenter.from_pretrained(
        grounding, sam, box_threshold=0.0, mask_score_threshold=-1.0
    )
    config = EvaluatorConfig(
        grounding_dino=grounding, sam=sam, box_threshold=0.0, mask_threshold=-1.0, **SMALL
    )
    evaluation = EvaluatorSuite(config).segmenter
    assert type(mining.segmenter) is type(evaluation)
    assert mining.segmenter.boxes(FRAMES, ["cat"]) == evaluation.boxes(FRAMES, ["cat"])
