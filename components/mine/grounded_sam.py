"""The `grounded-sam` mining backend: the shared GroundingDINO + SAM segmenter under the miner's thresholds.

Frames are resized as the GroundingDINO folder's image processor says. Each word is its own prompt
("cat."), so a box always belongs to one word; the best box above
`box_threshold` per frame goes to SAM as a box prompt, and the mask is kept when SAM's predicted IoU passes
`mask_score_threshold` and its area lies in [min_area, max_area].
"""

from __future__ import annotations

from dataclasses import dataclass

from components.grounded_segmenter import GroundedSegmenter, load_grounding, load_sam, processor_sides
from components.mine.config import MinerConfig
from components.mine.segment import Detections, SegmentRequest, detection_from_mask


@dataclass
class GroundedSamSegmenter:
    """Open-vocabulary grounding (GroundingDINO) then box-prompted segmentation (SAM), on the CPU."""

    segmenter: GroundedSegmenter
    min_area: float = 0.003
    max_area: float = 0.9
    name: str = "grounded-sam"

    @classmethod
    def from_config(cls, config: MinerConfig) -> GroundedSamSegmenter:
        grounding, tokenizer, folder = load_grounding(config.grounding_dir, "cpu")
        sam, _ = load_sam(config.sam_dir, "cpu")
        thresholds = (config.box_threshold, config.mask_score_threshold, *processor_sides(folder))
        segmenter = GroundedSegmenter(grounding, tokenizer, sam, *thresholds)
        return cls(segmenter, config.min_area, config.max_area)

    def segment(self, request: SegmentRequest) -> Detections:
        indices = list(request.frame_indices)
        frames = request.frames[indices]
        boxes: dict[int, dict[str, tuple[list[int], float]]] = {i: {} for i in indices}
        for word in request.words:
            for index, found in zip(indices, self.segmenter.boxes(frames, [word.word]), strict=True):
                boxes[index].update(found)
        detections: Detections = {word.word: {} for word in request.words}
        for index, prompts in boxes.items():
            masks = self.segmenter.masks(request.frames[index], {w: box for w, (box, _) in prompts.items()})
            for word, mask in masks.items():
                detection = detection_from_mask(mask, prompts[word][1])
                if detection is not None and self.min_area <= detection.area <= self.max_area:
                    detections[word][index] = detection
        return detections
