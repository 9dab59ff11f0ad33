"""GroundingDINO boxes + SAM masks (the transformers implementations), weights from a folder or s3:// URI.

Each word is its own GroundingDINO prompt ("cat."), so a box always belongs to one word; the best box above
`box_threshold` per frame goes to SAM as a box prompt, and the mask is kept when SAM's predicted IoU reaches
`mask_score_threshold` and its area lies in [min_area, max_area].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from components.mine.segment import Detection, Detections, SegmentRequest, detection_from_mask
from components.storage import materialize


@dataclass
class GroundedSamSegmenter:
    """Open-vocabulary grounding (GroundingDINO) then box-prompted segmentation (SAM)."""

    detector: Any
    detector_processor: Any
    sam: Any
    sam_processor: Any
    box_threshold: float = 0.3
    text_threshold: float = 0.25
    mask_score_threshold: float = 0.5
    min_area: float = 0.003
    max_area: float = 0.9
    name: str = "grounded-sam"

    @classmethod
    def from_pretrained(cls, grounding_dir: str, sam_dir: str, **thresholds: float) -> GroundedSamSegmenter:
        from transformers import AutoProcessor, GroundingDinoForObjectDetection, SamModel, SamProcessor

        grounding = materialize(grounding_dir, what="GroundingDINO model folder", folder=True)
        sam = materialize(sam_dir, what="SAM model folder", folder=True)
        return cls(
            GroundingDinoForObjectDetection.from_pretrained(grounding).eval(),
            AutoProcessor.from_pretrained(grounding),
            SamModel.from_pretrained(sam).eval(),
            SamProcessor.from_pretrained(sam),
            **thresholds,
        )

    def segment(self, request: SegmentRequest) -> Detections:
        import torch

        indices = list(request.frame_indices)
        images = [request.frames[i] for i in indices]
        h, w = images[0].shape[:2]
        boxes: dict[int, list[tuple[str, list[float], float]]] = {i: [] for i in indices}
        with torch.no_grad():
            for word in request.words:
                inputs = self.detector_processor(
                    images=images, text=[f"{word.word.lower()}."] * len(images), return_tensors="pt"
                )
                outputs = self.detector(**inputs)
                results = self.detector_processor.post_process_grounded_object_detection(
                    outputs,
                    inputs["input_ids"],
                    threshold=self.box_threshold,
                    text_threshold=self.text_threshold,
                    target_sizes=[(h, w)] * len(images),
                )
                for index, result in zip(indices, results, strict=True):
                    if len(result["scores"]):
                        best = int(result["scores"].argmax())
                        box = [float(v) for v in result["boxes"][best]]
                        boxes[index].append((word.word, box, float(result["scores"][best])))
            found: Detections = {word.word: {} for word in request.words}
            for index, prompts in boxes.items():
                for word, detection in zip(
                    [p[0] for p in prompts], self._masks(request.frames[index], prompts)
                ):
                    if detection is not None:
                        found[word][index] = detection
        return found

    def _masks(
        self, frame: np.ndarray, prompts: list[tuple[str, list[float], float]]
    ) -> list[Detection | None]:
        if not prompts:
            return []
        inputs = self.sam_processor(
            images=[frame], input_boxes=[[box for _, box, _ in prompts]], return_tensors="pt"
        )
        outputs = self.sam(**inputs, multimask_output=False)
        masks = self.sam_processor.image_processor.post_process_masks(
            outputs.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"]
        )[0][:, 0].numpy()
        quality = outputs.iou_scores[0, :, 0].numpy()
        detections = []
        for mask, iou, (_, _, box_score) in zip(masks, quality, prompts, strict=True):
            area = float(mask.mean())
            keep = iou >= self.mask_score_threshold and self.min_area <= area <= self.max_area
            detections.append(detection_from_mask(mask, box_score) if keep else None)
        return detections
