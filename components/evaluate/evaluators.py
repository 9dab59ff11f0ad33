"""The evaluator networks: CLIP (Text-S, Vid-S), GroundingDINO + SAM + DINO ViT (Subj-S), a face detector
with ArcFace (Face-S) and a flow backend (Dync-D).

Each network loads from a local folder or an s3:// URI in transformers' format (the reference models:
`openai/clip-vit-large-patch14`, `facebook/dino-vitb16`, `IDEA-Research/grounding-dino-tiny`,
`facebook/sam-vit-base`, insightface `backbone.pth` r100). A network left unset is built from a small
config of the same architecture with seeded random weights; its name goes into `random_weights`, which
reports and MLflow tags carry so nobody reads those scores as quality.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from components.evaluate import preprocess
from components.evaluate.arcface import TINY_CONFIG, IResNet, config_dict, load_arcface
from components.evaluate.dynamics import FlowBackend, make_flow
from components.evaluate.faces import FaceDetector, extend_face_box, make_face_detector
from components.evaluate.metrics import box_mask_consistent
from components.evaluate.text import clip_normalize
from components.evaluate.weights import config_fingerprint, folder_fingerprint
from components.grounded_segmenter import (
    GroundedSegmenter,
    load_grounding,
    load_sam,
    random_grounding,
    random_sam,
)
from components.storage import materialize

EVALUATOR_NAMES = ("clip", "dino", "grounding_dino", "sam", "arcface")
DINO_LAYER_NORM_EPS = 1e-6  # `partial(nn.LayerNorm, eps=1e-6)` in DINO's vision_transformer.py
TINY_TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)  # random


@dataclass
class EvaluatorConfig:
    """Where each evaluator comes from, and the protocol's thresholds (defaults: the public code's)."""

    clip: str | None = None  # CLIPModel folder/URI (ViT-L/14); None -> random tiny CLIP
    dino: str | None = None  # ViTModel folder/URI (DINO ViT-B/16); None -> random tiny ViT
    grounding_dino: str | None = None  # GroundingDinoForObjectDetection folder/URI with its tokenizer
    sam: str | None = None  # SamModel folder/URI (ViT-B)
    arcface: str | None = None  # folder/URI holding insightface backbone.pth
    arcface_network: str = "r100"
    face_detector: str = "haar"  # 'haar' (ships with OpenCV) or 'yunet:<onnx>'
    flow: str = "farneback"  # 'farneback' (weight-free) or 'raft:<weights>'
    box_threshold: float = 0.4
    mask_threshold: float = 0.9  # on SAM's predicted IoU
    grounding_short_side: int = 800
    grounding_max_side: int = 1333
    random_grounding_short_side: int = 64  # a random-weight detector means nothing at any size: keep it cheap
    device: str = "auto"
    seed: int = 0  # random-weight evaluators are built under this seed, so their scores are reproducible

    def resolved_device(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device


class ByteTokenizer:
    """Tokenizer for random-weight text towers: UTF-8 bytes shifted past special ids (no vocab file needed).

    `special` maps bos/eos/and byte values to fixed ids, so GroundingDINO's special-token logic ('.',
    [CLS], [SEP]) still sees BERT's ids.
    """

    def __init__(
        self, bos: int, eos: int, offset: int, special: dict[int, int] | None = None, max_length: int = 256
    ) -> None:
        self.bos, self.eos, self.offset, self.special = bos, eos, offset, special or {}
        self.max_length = max_length

    def __call__(self, text: str) -> dict[str, list[int]]:
        ids = [self.special.get(b, self.offset + b) for b in text.lower().encode("utf-8")]
        return {"input_ids": [self.bos, *ids[: self.max_length - 2], self.eos]}  # truncate, keep eos


def _seeded(seed: int, build: Any) -> Any:
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return build()
    finally:
        torch.random.set_rng_state(state)


class ClipEmbedder:
    """CLIP image embeddings of frames and text embeddings of prompts (projected, like `clip.encode_*`)."""

    def __init__(self, path: str | None, device: str, seed: int) -> None:
        from transformers import CLIPConfig, CLIPModel

        self.device = device
        if path:
            folder = materialize(path, what="evaluator weights path")
            self.model = CLIPModel.from_pretrained(folder).eval().to(device)
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(folder)
            self.tokenize = lambda text: tok(text, truncation=True, max_length=77)["input_ids"]
            self.model_id = f"clip:{folder_fingerprint(folder)}"
            self.random = False
        else:
            text = dict(TINY_TOWER, vocab_size=260, max_position_embeddings=77, pad_token_id=0)
            text.update(bos_token_id=258, eos_token_id=259)
            vision = dict(TINY_TOWER, image_size=224, patch_size=32)
            config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)
            self.model = _seeded(seed, lambda: CLIPModel(config)).eval().to(device)
            byte_tok = ByteTokenizer(bos=258, eos=259, offset=2, max_length=77)
            self.tokenize = lambda text: byte_tok(text)["input_ids"]
            self.model_id = f"clip:random:{seed}:{config_fingerprint(config.to_dict())}"
            self.random = True

    @torch.no_grad()
    def frames(self, frames: np.ndarray, batch: int = 16) -> np.ndarray:
        out = []
        for i in range(0, len(frames), batch):
            pixels = preprocess.clip_frames(frames[i : i + batch]).to(self.device)
            out.append(self.model.get_image_features(pixel_values=pixels).pooler_output.float().cpu())
        return torch.cat(out).numpy()

    @torch.no_grad()
    def text(self, prompt: str) -> np.ndarray:
        """Text embedding of the prompt, normalised first as CLIP's own tokenizer does (`clip_normalize`)."""
        ids = torch.tensor([self.tokenize(clip_normalize(prompt))], device=self.device)
        return self.model.get_text_features(input_ids=ids).pooler_output[0].float().cpu().numpy()


class DinoEmbedder:
    """DINO ViT CLS embedding (the torch.hub `dino_vitb16` output: final-norm CLS token, no head).

    DINO's ViT uses LayerNorm eps 1e-6; the transformers `facebook/dino-vitb16` config leaves it at
    ViTConfig's 1e-12, so loading sets 1e-6 and the model id records what the config said.
    """

    def __init__(self, path: str | None, device: str, seed: int) -> None:
        from transformers import ViTConfig, ViTModel

        self.device = device
        if path:
            folder = materialize(path, what="evaluator weights path")
            self.config_layer_norm_eps = ViTConfig.from_pretrained(folder).layer_norm_eps
            self.model = (
                ViTModel.from_pretrained(folder, add_pooling_layer=False, layer_norm_eps=DINO_LAYER_NORM_EPS)
                .eval()
                .to(device)
            )
            self.model_id = f"dino:{folder_fingerprint(folder)}:ln_eps={DINO_LAYER_NORM_EPS:g}"
            if self.config_layer_norm_eps != DINO_LAYER_NORM_EPS:
                self.model_id += f"(config {self.config_layer_norm_eps:g})"
            self.random = False
        else:
            config = ViTConfig(**TINY_TOWER, patch_size=16, layer_norm_eps=DINO_LAYER_NORM_EPS)
            self.config_layer_norm_eps = DINO_LAYER_NORM_EPS
            self.model = _seeded(seed, lambda: ViTModel(config, add_pooling_layer=False)).eval().to(device)
            self.model_id = f"dino:random:{seed}:{config_fingerprint(config.to_dict())}"
            self.random = True

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor) -> np.ndarray:
        return self.model(pixel_values=pixels.to(self.device)).last_hidden_state[:, 0].float().cpu().numpy()


def grounded_segmenter(config: EvaluatorConfig, device: str) -> GroundedSegmenter:
    """The shared segmenter under the protocol's thresholds, seeded random tiny models for unset weights."""
    short, max_side = config.grounding_short_side, config.grounding_max_side
    if config.grounding_dino:
        grounding, tokenizer, folder = load_grounding(config.grounding_dino, device)
        gid = folder_fingerprint(folder)
    else:
        grounding = _seeded(config.seed, random_grounding).to(device)
        # BERT's ids for [CLS], [SEP], '.' and '?' keep GroundingDINO's phrase masking meaningful
        tokenizer = ByteTokenizer(bos=101, eos=102, offset=110, special={ord("."): 1012, ord("?"): 1029})
        gid = f"random:{config.seed}:{config_fingerprint(grounding.config.to_dict())}"
        short, max_side = config.random_grounding_short_side, 2 * config.random_grounding_short_side
    if config.sam:
        sam, folder = load_sam(config.sam, device)
        sid = folder_fingerprint(folder)
    else:
        sam = _seeded(config.seed, random_sam).to(device)
        sid = f"random:{config.seed}:{config_fingerprint(sam.config.to_dict())}"
    thresholds = f"{config.box_threshold}:{config.mask_threshold}:{config.grounding_short_side}"
    thresholds += f":{config.grounding_max_side}:{config.random_grounding_short_side}"
    model_id = f"grounded_sam:{gid}:{sid}:{thresholds}"
    return GroundedSegmenter(
        grounding, tokenizer, sam, config.box_threshold, config.mask_threshold, short, max_side, model_id
    )


class FaceEmbedder:
    """Face detector + ArcFace: embeddings [k, D] of the frames where a face was found."""

    def __init__(self, config: EvaluatorConfig, device: str) -> None:
        self.device = device
        self.detector: FaceDetector = make_face_detector(config.face_detector)
        if config.arcface:
            folder = materialize(config.arcface, what="evaluator weights path")
            self.model = load_arcface(folder, config.arcface_network).to(device)
            self.model_id = f"arcface:{folder_fingerprint(folder)}:{self.detector.name}"
            self.random = False
        else:
            self.model = _seeded(config.seed, lambda: IResNet(TINY_CONFIG)).eval().to(device)
            self.model_id = f"arcface:random:{config.seed}:{config_fingerprint(config_dict(TINY_CONFIG))}:{self.detector.name}"
            self.random = True

    @torch.no_grad()
    def embed_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        x = torch.stack([preprocess.arcface_crop(c) for c in crops]).to(self.device)
        return self.model(x).float().cpu().numpy()

    def video(self, frames: np.ndarray) -> np.ndarray:
        crops = []
        for frame in frames:
            box = self.detector(frame)
            if box is not None:
                x0, y0, x1, y1 = extend_face_box(box, frame.shape[0])
                crop = frame[y0:y1, x0:x1]
                if crop.size:
                    crops.append(crop)
        if not crops:
            return np.zeros((0, self.model.config.num_features), dtype=np.float32)
        return self.embed_crops(crops)


class EvaluatorSuite:
    """All evaluators, built lazily (a face-only run never loads GroundingDINO)."""

    def __init__(self, config: EvaluatorConfig | None = None) -> None:
        self.config = config or EvaluatorConfig()
        self.device = self.config.resolved_device()
        self._cache: dict[str, Any] = {}

    def _get(self, name: str, build: Any) -> Any:
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    @property
    def clip(self) -> ClipEmbedder:
        return self._get("clip", lambda: ClipEmbedder(self.config.clip, self.device, self.config.seed))

    @property
    def dino(self) -> DinoEmbedder:
        return self._get("dino", lambda: DinoEmbedder(self.config.dino, self.device, self.config.seed))

    @property
    def segmenter(self) -> GroundedSegmenter:
        return self._get("segmenter", lambda: grounded_segmenter(self.config, self.device))

    @property
    def faces(self) -> FaceEmbedder:
        return self._get("faces", lambda: FaceEmbedder(self.config, self.device))

    @property
    def flow(self) -> FlowBackend:
        return self._get("flow", lambda: make_flow(self.config.flow, self.device))

    def random_weights(self) -> list[str]:
        """Evaluators that are (or would be) built with random weights, from the config alone."""
        return [name for name in EVALUATOR_NAMES if not getattr(self.config, name)]

    def subject_embeddings(self, frames: np.ndarray, words: list[str]) -> list[dict[str, np.ndarray]]:
        """Per frame: word -> DINO embedding of the detected, masked, white-padded crop (misses absent)."""
        boxes = self.segmenter.boxes(frames, words)
        out: list[dict[str, np.ndarray]] = []
        for frame, frame_boxes in zip(frames, boxes, strict=True):
            masks = self.segmenter.masks(frame, {w: box for w, (box, _) in frame_boxes.items()})
            found: dict[str, np.ndarray] = {}
            for word in words:
                if word not in frame_boxes or word not in masks:
                    continue
                x0, y0, x1, y1 = box = frame_boxes[word][0]
                crop_mask = masks[word][y0:y1, x0:x1]
                if not box_mask_consistent(box, crop_mask.shape):
                    continue
                pixels = preprocess.dino_subject_crop(frame, (x0, y0, x1, y1), crop_mask)
                found[word] = self.dino(pixels[None])[0]
            out.append(found)
        return out

    def model_ids(self) -> dict[str, str]:
        """Identity (weights fingerprint or random config) of each evaluator built so far."""
        return {name: obj.model_id for name, obj in self._cache.items() if hasattr(obj, "model_id")}

    def describe(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "random_weights": self.random_weights()}
