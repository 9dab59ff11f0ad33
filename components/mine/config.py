"""The miner's one config: which backend runs each step, and every threshold (all recorded in dataset.json)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

ENTITY_BACKENDS = ("rules", "llm-local", "llm-http")
SEGMENT_BACKENDS = ("motion", "masks", "grounded-sam")
INPAINT_BACKENDS = ("opencv", "temporal", "diffusers")


@dataclass(frozen=True)
class MinerConfig:
    """Defaults mine real footage offline: rule-based entity words, motion segmentation, temporal + OpenCV
    inpainting (measured on the embedded dataset: 34.6 dB background PSNR against 27.7 dB for OpenCV alone).

    Fields by step:
    - entity words: `entities` backend; `llm_model_dir` (local transformers causal LM), `llm_url` /
      `llm_model` / `llm_api_key_env` (OpenAI-compatible endpoint), `llm_attempts` retries per caption.
    - segmentation: `segmenter` backend; `masks_dir` (existing masks, `<dir>/<video stem>/<word>/<frame>.png`);
      `grounding_dir` / `sam_dir` (transformers GroundingDINO and SAM folders), `box_threshold`,
      `mask_score_threshold` (SAM's predicted IoU); `motion_threshold` (colour difference
      to the background model, 0-255), `min_area` / `max_area` (mask area as a fraction of the frame).
    - clip: `clip_frames` frames taken every `frame_stride` source frames from the middle of the video;
      frames are resized so the longest side is at most `max_side`. Videos whose long side is more than
      `max_aspect` times the short one, or whose mined short side is under `min_side` pixels, are rejected.
    - references: `references_per_entity` crops from frames outside the clip, box grown by `reference_margin`.
    - background: union of foreground masks dilated by `background_dilation` (fraction of the longer side),
      filled by `inpaint` ("opencv": cv2.inpaint; "temporal": median of the other segmented frames first,
      then cv2.inpaint; "diffusers": the same, then a diffusers inpainting model from `inpaint_model_dir` at
      `inpaint_resolution` with `inpaint_steps` steps).
    - `on_missing_entity`: "reject" the sample when an entity is not found in every keyframe and in at least
      one reference frame, or "drop" that entity and keep the sample while a subject or object remains.
    - output: `val_fraction` / `test_fraction` of accepted samples, chosen by a hash of the sample id.
    - execution: `shard_size` samples per shard, `workers` processes (1 runs in this process).
    """

    entities: str = "rules"
    llm_model_dir: str | None = None
    llm_url: str | None = None
    llm_model: str = "default"
    llm_api_key_env: str = "OPENAI_API_KEY"
    llm_attempts: int = 3
    segmenter: str = "motion"
    masks_dir: str | None = None
    grounding_dir: str | None = None
    sam_dir: str | None = None
    box_threshold: float = 0.3
    mask_score_threshold: float = 0.5
    motion_threshold: float = 20.0
    min_area: float = 0.003
    max_area: float = 0.9
    clip_frames: int = 16
    frame_stride: int = 1
    max_side: int = 512
    min_side: int = 16  # the validator's smallest width or height (ValidationConfig.min_size)
    max_aspect: float = 4.0
    references_per_entity: int = 3
    reference_margin: float = 0.1
    background_dilation: float = 0.03
    inpaint: str = "temporal"
    inpaint_model_dir: str | None = None
    inpaint_resolution: int = 512
    inpaint_steps: int = 25
    on_missing_entity: str = "reject"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    shard_size: int = 16
    workers: int = 2

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("entities", self.entities, ENTITY_BACKENDS),
            ("segmenter", self.segmenter, SEGMENT_BACKENDS),
            ("inpaint", self.inpaint, INPAINT_BACKENDS),
            ("on_missing_entity", self.on_missing_entity, ("reject", "drop")),
        ):
            if value not in allowed:
                raise ValueError(f"{name}={value!r} must be one of {allowed}")
        needs = {
            "llm-local": "llm_model_dir",
            "llm-http": "llm_url",
            "masks": "masks_dir",
            "diffusers": "inpaint_model_dir",
        }
        for backend, field in needs.items():
            if backend in (self.entities, self.segmenter, self.inpaint) and not getattr(self, field):
                raise ValueError(f"backend {backend!r} needs {field}")
        if self.segmenter == "grounded-sam" and not (self.grounding_dir and self.sam_dir):
            raise ValueError("segmenter 'grounded-sam' needs grounding_dir and sam_dir")
        positive = ("llm_attempts", "clip_frames", "frame_stride", "max_side", "references_per_entity")
        for name in (*positive, "shard_size", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.inpaint_resolution % 8 or self.inpaint_steps < 1:
            raise ValueError(
                f"inpaint_resolution={self.inpaint_resolution} must be a multiple of 8 and "
                f"inpaint_steps={self.inpaint_steps} >= 1"
            )
        if self.clip_frames < 3:
            raise ValueError(
                f"clip_frames={self.clip_frames} must be >= 3 (first, middle and last keyframes)"
            )
        if not 2 <= self.min_side <= self.max_side or not self.max_aspect >= 1:
            raise ValueError(
                f"need 2 <= min_side ({self.min_side}) <= max_side ({self.max_side}) and "
                f"max_aspect ({self.max_aspect}) >= 1"
            )
        if not 0 <= self.min_area < self.max_area <= 1:
            raise ValueError(f"need 0 <= min_area ({self.min_area}) < max_area ({self.max_area}) <= 1")
        if self.val_fraction < 0 or self.test_fraction < 0 or self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"val_fraction={self.val_fraction} and test_fraction={self.test_fraction} invalid"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint_fields(self) -> dict:
        """Fields that change what a shard produces (execution settings such as `workers` do not)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "workers"}
