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
from components.storage import materialize

EVALUATOR_NAMES = ("clip", "dino", "grounding_dino", "sam", "arcface")
DINO_LAYER_NORM_EPS = 1e-6  # `partial(nn.LayerNorm, eps=1e-6)` in DINO's vision_transformer.py


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
            text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
            text.update(
                vocab_size=260, max_position_embeddings=77, bos_token_id=258, eos_token_id=259, pad_token_id=0
            )
            vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
            vision.update(image_size=224, patch_size=32)
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
            config = ViTConfig(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                patch_size=16,
                layer_norm_eps=DINO_LAYER_NORM_EPS,
            )
            self.config_layer_norm_eps = DINO_LAYER_NORM_EPS
            self.model = _seeded(seed, lambda: ViTModel(config, add_pooling_layer=False)).eval().to(device)
            self.model_id = f"dino:random:{seed}:{config_fingerprint(config.to_dict())}"
            self.random = True

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor) -> np.ndarray:
        return self.model(pixel_values=pixels.to(self.device)).last_hidden_state[:, 0].float().cpu().numpy()


def _find_sublist_mask(main: list[int], sub: list[int], length: int) -> torch.Tensor:
    mask = [False] * len(main)
    for i in range(len(main) - len(sub) + 1):
        if main[i : i + len(sub)] == sub:
            mask[i : i + len(sub)] = [True] * len(sub)
    return torch.tensor(mask + [False] * (length - len(mask)))


class GroundedSegmenter:
    """GroundingDINO boxes per entity word, then SAM masks, per frame (`get_grounding_output` + `get_sam_output`)."""

    def __init__(self, config: EvaluatorConfig, device: str) -> None:
        from transformers import (
            BertConfig,
            GroundingDinoConfig,
            GroundingDinoForObjectDetection,
            SamConfig,
            SamModel,
            SwinConfig,
        )

        self.config, self.device = config, device
        self.random: list[str] = []
        if config.grounding_dino:
            folder = materialize(config.grounding_dino, what="evaluator weights path")
            self.grounding = GroundingDinoForObjectDetection.from_pretrained(folder).eval().to(device)
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            gid = folder_fingerprint(folder)
        else:
            backbone = SwinConfig(
                embed_dim=16,
                depths=[1, 1, 1, 1],
                num_heads=[1, 1, 2, 2],
                window_size=7,
                out_features=["stage2", "stage3", "stage4"],
            )
            text = BertConfig(
                vocab_size=1030,
                hidden_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=64,
            )
            gconf = GroundingDinoConfig(
                backbone_config=backbone,
                text_config=text,
                num_queries=30,
                encoder_layers=1,
                decoder_layers=2,
                d_model=32,
                encoder_ffn_dim=64,
                decoder_ffn_dim=64,
                encoder_attention_heads=2,
                decoder_attention_heads=2,
                num_feature_levels=3,
                encoder_n_points=2,
                decoder_n_points=2,
            )
            self.grounding = (
                _seeded(config.seed, lambda: GroundingDinoForObjectDetection(gconf)).eval().to(device)
            )
            # BERT's ids for [CLS], [SEP], '.' and '?' keep GroundingDINO's phrase masking meaningful
            self.tokenizer = ByteTokenizer(
                bos=101, eos=102, offset=110, special={ord("."): 1012, ord("?"): 1029}
            )
            gid = f"random:{config.seed}:{config_fingerprint(gconf.to_dict())}"
            self.random.append("grounding_dino")
        if config.sam:
            folder = materialize(config.sam, what="evaluator weights path")
            self.sam = SamModel.from_pretrained(folder).eval().to(device)
            sid = folder_fingerprint(folder)
        else:
            sconf = SamConfig(
                vision_config=dict(
                    hidden_size=32,
                    num_hidden_layers=2,
                    num_attention_heads=2,
                    image_size=64,
                    patch_size=16,
                    output_channels=16,
                    window_size=2,
                    global_attn_indexes=[1],
                    mlp_dim=64,
                    num_pos_feats=8,
                ),
                prompt_encoder_config=dict(
                    hidden_size=16, image_size=64, patch_size=16, mask_input_channels=4
                ),
                mask_decoder_config=dict(
                    hidden_size=16,
                    num_hidden_layers=2,
                    num_attention_heads=2,
                    mlp_dim=32,
                    iou_head_hidden_dim=16,
                ),
            )
            self.sam = _seeded(config.seed, lambda: SamModel(sconf)).eval().to(device)
            sid = f"random:{config.seed}:{config_fingerprint(sconf.to_dict())}"
            self.random.append("sam")
        thresholds = f"{config.box_threshold}:{config.mask_threshold}:{config.grounding_short_side}"
        thresholds += f":{config.grounding_max_side}:{config.random_grounding_short_side}"
        self.model_id = f"grounded_sam:{gid}:{sid}:{thresholds}"

    def _grounding_pixels(self, frame: np.ndarray) -> torch.Tensor:
        """`RandomResize([short], max_size)` (shorter side to `short` unless the long side passes `max`), ImageNet norm."""
        from PIL import Image

        h, w = frame.shape[:2]
        short, max_size = self.config.grounding_short_side, self.config.grounding_max_side
        if "grounding_dino" in self.random:
            short, max_size = (
                self.config.random_grounding_short_side,
                2 * self.config.random_grounding_short_side,
            )
        lo, hi = float(min(h, w)), float(max(h, w))
        if hi / lo * short > max_size:
            short = int(round(max_size * lo / hi))
        if (w <= h and w == short) or (h <= w and h == short):
            oh, ow = h, w
        elif w < h:
            ow, oh = short, int(short * h / w)
        else:
            oh, ow = short, int(short * w / h)
        resized = np.asarray(Image.fromarray(frame[:, :, :3]).resize((ow, oh), Image.BILINEAR))
        return preprocess.normalize(resized, preprocess.IMAGENET_MEAN, preprocess.IMAGENET_STD)

    @torch.no_grad()
    def boxes(self, frames: np.ndarray, words: list[str], batch: int = 4) -> list[dict[str, list[int]]]:
        """Per frame: word -> box xyxy (pixels) of the query that scores highest for that word above threshold."""
        _, H, W, _ = frames.shape
        prompt = " . ".join(words).lower().strip()
        prompt = prompt if prompt.endswith(".") else prompt + "."
        prompt_ids = self.tokenizer(prompt)["input_ids"]
        max_len = self.grounding.config.max_text_len
        masks = {
            w: _find_sublist_mask(prompt_ids, self.tokenizer(w)["input_ids"][1:-1], max_len) for w in words
        }
        ids = torch.tensor([prompt_ids], device=self.device)
        results: list[dict[str, list[int]]] = []
        for i in range(0, len(frames), batch):
            pixels = torch.stack([self._grounding_pixels(f) for f in frames[i : i + batch]]).to(self.device)
            n = len(pixels)
            out = self.grounding(
                pixel_values=pixels,
                input_ids=ids.expand(n, -1),
                attention_mask=torch.ones_like(ids).expand(n, -1),
                token_type_ids=torch.zeros_like(ids).expand(n, -1),
            )
            logits_all = out.logits.sigmoid().float().cpu()
            boxes_all = out.pred_boxes.float().cpu()
            for logits, boxes in zip(logits_all, boxes_all, strict=True):
                logits = logits[:, :max_len]
                scores = []
                for w in words:
                    m = masks[w][: logits.shape[1]]
                    masked = logits * m
                    scores.append((masked.max(dim=1).values + masked.sum(dim=1) / m.sum().clamp(min=1)) / 2)
                per_box = torch.stack(scores).T  # (num_queries, num_words)
                best_word = per_box.max(dim=1).indices
                best: dict[str, tuple[int | None, float]] = {w: (None, 0.0) for w in words}
                for box_id, word_id in enumerate(best_word.tolist()):
                    score = float(per_box[box_id, word_id])
                    if best[words[word_id]][1] < score:
                        best[words[word_id]] = (box_id, score)
                frame_boxes = {}
                for w, (box_id, score) in best.items():
                    if box_id is not None and score > self.config.box_threshold:
                        b = boxes[box_id] * torch.tensor([W, H, W, H])
                        b[:2] -= b[2:] / 2
                        b[2:] += b[:2]
                        frame_boxes[w] = b.int().tolist()
                results.append(frame_boxes)
        return results

    @torch.no_grad()
    def masks(self, frame: np.ndarray, boxes: dict[str, list[int]]) -> dict[str, np.ndarray]:
        """SAM masks (full frame, bool) for each box whose predicted IoU passes `mask_threshold`."""
        import torch.nn.functional as F
        from PIL import Image

        if not boxes:
            return {}
        size = self.sam.config.vision_config.image_size
        h, w = frame.shape[:2]
        scale = size / max(h, w)
        nh, nw = int(h * scale + 0.5), int(w * scale + 0.5)
        resized = np.asarray(Image.fromarray(frame[:, :, :3]).resize((nw, nh), Image.BILINEAR)).astype(
            np.float32
        )
        mean, std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
        x = torch.from_numpy(((resized - mean) / std).astype(np.float32)).permute(2, 0, 1)
        x = F.pad(x, (0, size - nw, 0, size - nh))[None].to(self.device)
        words = list(boxes)
        b = torch.tensor([boxes[k] for k in words], dtype=torch.float32) * torch.tensor(
            [nw / w, nh / h, nw / w, nh / h]
        )
        out = self.sam(pixel_values=x, input_boxes=b[None].to(self.device), multimask_output=False)
        low = out.pred_masks[0, :, 0].float()  # (num_boxes, h_low, w_low)
        up = F.interpolate(low[:, None], (size, size), mode="bilinear", align_corners=False)[:, :, :nh, :nw]
        full = F.interpolate(up, (h, w), mode="bilinear", align_corners=False)[:, 0] > 0.0
        ious = out.iou_scores[0, :, 0].float().cpu()
        return {
            k: full[i].cpu().numpy()
            for i, k in enumerate(words)
            if float(ious[i]) > self.config.mask_threshold
        }


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
        return self._get("segmenter", lambda: GroundedSegmenter(self.config, self.device))

    @property
    def faces(self) -> FaceEmbedder:
        return self._get("faces", lambda: FaceEmbedder(self.config, self.device))

    @property
    def flow(self) -> FlowBackend:
        return self._get("flow", lambda: make_flow(self.config.flow, self.device))

    def random_weights(self) -> list[str]:
        """Evaluators that are (or would be) built with random weights, from the config alone."""
        fields = {
            "clip": self.config.clip,
            "dino": self.config.dino,
            "grounding_dino": self.config.grounding_dino,
        }
        fields.update(sam=self.config.sam, arcface=self.config.arcface)
        return [name for name in EVALUATOR_NAMES if not fields[name]]

    def subject_embeddings(self, frames: np.ndarray, words: list[str]) -> list[dict[str, np.ndarray]]:
        """Per frame: word -> DINO embedding of the detected, masked, white-padded crop (misses absent)."""
        boxes = self.segmenter.boxes(frames, words)
        out: list[dict[str, np.ndarray]] = []
        for frame, frame_boxes in zip(frames, boxes, strict=True):
            masks = self.segmenter.masks(frame, frame_boxes)
            found: dict[str, np.ndarray] = {}
            for word in words:
                if word not in frame_boxes or word not in masks:
                    continue
                x0, y0, x1, y1 = frame_boxes[word]
                crop_mask = masks[word][y0:y1, x0:x1]
                if not box_mask_consistent(frame_boxes[word], crop_mask.shape):
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
