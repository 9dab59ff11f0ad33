"""GroundingDINO boxes per entity word, then SAM box-prompted masks: the one open-vocabulary segmenter.

Evaluation (Subj-S, under the MSRVTT-Personalization protocol's thresholds) and mining (under its own) pass
their thresholds in. It follows the public Grounded-SAM code (`get_grounding_output`, `get_sam_output`): one
prompt of the words ("cat . ball ."); a query's score for a word is the mean of the max and the mean of its
sigmoid logits over the word's tokens; the best query per word above `box_threshold` prompts SAM, whose mask
is kept when its predicted IoU passes `mask_threshold`. Weights: transformers folders or s3:// URIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.storage import materialize

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SAM_MEAN, SAM_STD = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
Box = list[int]  # x0, y0, x1, y1 in pixels


def load_grounding(uri: str, device: str) -> tuple[Any, Any, Path]:
    """GroundingDINO and its tokenizer from a folder or s3:// URI, and the local folder they came from."""
    from transformers import AutoTokenizer, GroundingDinoForObjectDetection

    folder = materialize(uri, what="GroundingDINO model folder", folder=True)
    model = GroundingDinoForObjectDetection.from_pretrained(folder).eval().to(device)
    return model, AutoTokenizer.from_pretrained(folder), folder


def processor_sides(folder: Path) -> tuple[int, int]:
    """The short and maximum long side the folder's image processor resizes to (800 and 1333 when unset)."""
    from transformers import AutoImageProcessor

    size = AutoImageProcessor.from_pretrained(folder).size
    return size.get("shortest_edge", 800), size.get("longest_edge", 1333)


def load_sam(uri: str, device: str) -> tuple[Any, Path]:
    """SAM from a folder or s3:// URI, and the local folder it came from."""
    from transformers import SamModel

    folder = materialize(uri, what="SAM model folder", folder=True)
    return SamModel.from_pretrained(folder).eval().to(device), folder


def random_grounding(vocab_size: int = 1030) -> Any:
    """A tiny GroundingDINO (Swin + BERT) of random weights (the caller seeds), for runs without weights."""
    from transformers import BertConfig, GroundingDinoConfig, GroundingDinoForObjectDetection, SwinConfig

    backbone = SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=7,
                          out_features=["stage2", "stage3", "stage4"])  # fmt: skip
    text = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64)  # fmt: skip
    config = GroundingDinoConfig(
        backbone_config=backbone, text_config=text, num_queries=30, encoder_layers=1, decoder_layers=2,
        d_model=32, encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=2,
        decoder_attention_heads=2, num_feature_levels=3, encoder_n_points=2, decoder_n_points=2,
    )  # fmt: skip
    return GroundingDinoForObjectDetection(config).eval()


def random_sam() -> Any:
    """A tiny SAM (64 px input) of random weights (the caller seeds), for runs without weights."""
    from transformers import SamConfig, SamModel

    config = SamConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=64,
                           patch_size=16, output_channels=16, window_size=2, global_attn_indexes=[1],
                           mlp_dim=64, num_pos_feats=8),
        prompt_encoder_config=dict(hidden_size=16, image_size=64, patch_size=16, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_dim=32,
                                 iou_head_hidden_dim=16),
    )  # fmt: skip
    return SamModel(config).eval()


def _word_mask(prompt: list[int], word: list[int], length: int) -> torch.Tensor:
    """Where the word's tokens sit in the prompt (every occurrence), padded to the text length."""
    mask = [False] * len(prompt)
    for i in range(len(prompt) - len(word) + 1):
        if prompt[i : i + len(word)] == word:
            mask[i : i + len(word)] = [True] * len(word)
    return torch.tensor(mask + [False] * (length - len(mask)))


@dataclass
class GroundedSegmenter:
    """Open-vocabulary grounding (GroundingDINO) then box-prompted segmentation (SAM) on RGB frames.

    `tokenizer(text)["input_ids"]` must give BERT's ids for [CLS], [SEP] and "." (GroundingDINO's phrase
    masking relies on them). Frames are resized so the short side is `short_side` unless the long side
    would pass `max_side` (GroundingDINO's `RandomResize([800], max_size=1333)` by default).
    """

    grounding: Any
    tokenizer: Any
    sam: Any
    box_threshold: float
    mask_threshold: float
    short_side: int = 800
    max_side: int = 1333
    model_id: str = "grounded-sam"  # what reports and caches record as the segmenter's identity

    def __post_init__(self) -> None:
        self.device = next(self.grounding.parameters()).device

    def _grounding_pixels(self, frame: np.ndarray) -> torch.Tensor:
        from PIL import Image

        h, w = frame.shape[:2]
        short = self.short_side
        lo, hi = float(min(h, w)), float(max(h, w))
        if hi / lo * short > self.max_side:
            short = int(round(self.max_side * lo / hi))
        if (w <= h and w == short) or (h <= w and h == short):
            oh, ow = h, w
        elif w < h:
            ow, oh = short, int(short * h / w)
        else:
            oh, ow = short, int(short * w / h)
        resized = np.asarray(Image.fromarray(frame[:, :, :3]).resize((ow, oh), Image.BILINEAR))
        x = torch.from_numpy(np.array(resized, copy=True)).permute(2, 0, 1).float() / 255.0
        return (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]

    @torch.no_grad()
    def boxes(
        self, frames: np.ndarray, words: list[str], batch: int = 4
    ) -> list[dict[str, tuple[Box, float]]]:
        """Per frame: word -> (box, score) of the query that scores highest for that word above threshold."""
        _, H, W, _ = frames.shape
        prompt = " . ".join(words).lower().strip()
        prompt = prompt if prompt.endswith(".") else prompt + "."
        prompt_ids = self.tokenizer(prompt)["input_ids"]
        max_len = self.grounding.config.max_text_len
        masks = {w: _word_mask(prompt_ids, self.tokenizer(w)["input_ids"][1:-1], max_len) for w in words}
        ids = torch.tensor([prompt_ids], device=self.device)
        results: list[dict[str, tuple[Box, float]]] = []
        for i in range(0, len(frames), batch):
            pixels = torch.stack([self._grounding_pixels(f) for f in frames[i : i + batch]]).to(self.device)
            n = len(pixels)
            out = self.grounding(
                pixel_values=pixels,
                input_ids=ids.expand(n, -1),
                attention_mask=torch.ones_like(ids).expand(n, -1),
                token_type_ids=torch.zeros_like(ids).expand(n, -1),
            )
            for logits, boxes in zip(
                out.logits.sigmoid().float().cpu(), out.pred_boxes.float().cpu(), strict=True
            ):
                logits = logits[:, :max_len]
                scores = []
                for w in words:
                    m = masks[w][: logits.shape[1]]
                    masked = logits * m
                    scores.append((masked.max(dim=1).values + masked.sum(dim=1) / m.sum().clamp(min=1)) / 2)
                per_box = torch.stack(scores).T  # (num_queries, num_words)
                best: dict[str, tuple[int | None, float]] = {w: (None, 0.0) for w in words}
                for box_id, word_id in enumerate(per_box.max(dim=1).indices.tolist()):
                    score = float(per_box[box_id, word_id])
                    if best[words[word_id]][1] < score:
                        best[words[word_id]] = (box_id, score)
                frame_boxes = {}
                for w, (box_id, score) in best.items():
                    if box_id is not None and score > self.box_threshold:
                        b = boxes[box_id] * torch.tensor([W, H, W, H])
                        b[:2] -= b[2:] / 2
                        b[2:] += b[:2]
                        frame_boxes[w] = (b.int().tolist(), score)
                results.append(frame_boxes)
        return results

    @torch.no_grad()
    def masks(self, frame: np.ndarray, boxes: dict[str, Box]) -> dict[str, np.ndarray]:
        """SAM masks (full frame, bool) for each box whose predicted IoU passes `mask_threshold`."""
        import torch.nn.functional as F
        from PIL import Image

        if not boxes:
            return {}
        size = self.sam.config.vision_config.image_size
        h, w = frame.shape[:2]
        scale = size / max(h, w)
        nh, nw = int(h * scale + 0.5), int(w * scale + 0.5)
        resized = np.asarray(Image.fromarray(frame[:, :, :3]).resize((nw, nh), Image.BILINEAR))
        x = torch.from_numpy(((resized.astype(np.float32) - SAM_MEAN) / SAM_STD).astype(np.float32))
        x = F.pad(x.permute(2, 0, 1), (0, size - nw, 0, size - nh))[None].to(self.device)
        words = list(boxes)
        b = torch.tensor([boxes[k] for k in words], dtype=torch.float32) * torch.tensor(
            [nw / w, nh / h, nw / w, nh / h]
        )
        out = self.sam(pixel_values=x, input_boxes=b[None].to(self.device), multimask_output=False)
        low = out.pred_masks[0, :, 0].float()  # (num_boxes, h_low, w_low)
        up = F.interpolate(low[:, None], (size, size), mode="bilinear", align_corners=False)[:, :, :nh, :nw]
        full = F.interpolate(up, (h, w), mode="bilinear", align_corners=False)[:, 0] > 0.0
        ious = out.iou_scores[0, :, 0].float().cpu()
        return {k: full[i].cpu().numpy() for i, k in enumerate(words) if float(ious[i]) > self.mask_threshold}
