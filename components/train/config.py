"""Training configuration: one dataclass per concern, passed around whole and logged flat to MLflow."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGES = ("1", "2", "both")
TRAINABLE = ("full", "personalization")
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DEEPSPEED_CONFIG = REPO_ROOT / "infra" / "deepspeed" / "zero2.json"


class TrainConfigError(ValueError):
    """A training option is out of range or inconsistent with another one."""


@dataclass
class AugmentConfig:
    """Anti copy-paste augmentation of references (arXiv 2501.06187, Sec. 3): each transform has its own probability."""

    p_resolution: float = 0.5  # downsample then Gaussian blur (resolution)
    downsample_range: tuple[float, float] = (0.25, 0.75)  # scale factor before upsampling back
    blur_sigma_range: tuple[float, float] = (0.3, 1.5)
    p_color: float = 0.5  # colour jitter + brightness (illumination)
    brightness: float = 0.3
    contrast: float = 0.2
    saturation: float = 0.3
    hue: float = 0.03
    p_flip: float = 0.5  # horizontal flip (pose)
    p_shear: float = 0.3
    shear_degrees: float = 12.0
    p_rotate: float = 0.3
    rotate_degrees: float = 15.0

    def __post_init__(self) -> None:
        for name in ("p_resolution", "p_color", "p_flip", "p_shear", "p_rotate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise TrainConfigError(f"augment.{name}={value} must be a probability in [0, 1]")
        lo, hi = self.downsample_range
        if not 0.0 < lo <= hi <= 1.0:
            raise TrainConfigError(
                f"augment.downsample_range={self.downsample_range} must satisfy 0 < lo <= hi <= 1"
            )

    @classmethod
    def disabled(cls) -> AugmentConfig:
        """No augmentation at all: references reach the model exactly as mined."""
        return cls(p_resolution=0.0, p_color=0.0, p_flip=0.0, p_shear=0.0, p_rotate=0.0)


@dataclass
class SampleSize:
    """One training sample's size: the clip (frames, height, width) and its references."""

    frames: int
    height: int
    width: int
    reference_size: int
    max_entities: int
    max_references: int


@dataclass
class DataConfig:
    """How samples are read from a mined dataset folder (see components/mine: manifest.parquet + media/)."""

    manifest: Path = Path("work/data/mined")
    split: str | None = "train"  # None: every row
    batch_size: int = 2  # per process, per micro-step
    num_workers: int = 0
    frames: int | None = None  # None: the preset's video size
    height: int | None = None
    width: int | None = None
    reference_size: int | None = None  # square side of reference images; None: the image encoder's input size
    p_background: float = 1.0  # probability of conditioning on the inpainted background when the row has one
    shuffle: bool = True
    cache_dir: Path | None = None  # decoded, resized clips cached as .npy (keyed by sha256 and size)
    features: Path | None = None  # an encode-once cache (`alchemist data encode`): train without the encoders
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay to `min_lr_ratio * lr`."""

    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    grad_accum: int = 1
    ema_decay: float = 0.999


@dataclass
class TrainConfig:
    """Everything `train()` needs; `steps` counts optimizer steps per stage."""

    out: Path = Path("work/train")
    preset: str = "tiny"
    stage: str = "both"
    steps: int = 100
    stage2_steps: int | None = None  # None: same as `steps`
    seed: int = 0
    deepspeed_config: Path = DEFAULT_DEEPSPEED_CONFIG
    resume: bool = False
    activation_checkpointing: bool = False
    compile: bool = False  # torch.compile the DiT (benchmarks/dit_step.py --compile measures it)
    binding: bool = True  # word-token binding of references (the ablation turns it off)
    # save_pretrained folder (local or s3://) to start from: stage 1's result, or an imported Wan2.1 backbone
    init_from: str | None = None
    model_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # {"dit": {"depth": 4}, ...}
    trainable: str = "full"  # stage 2: "full" fine-tune, or "personalization" only (backbone frozen)
    lora_rank: int = 0  # > 0: LoRA of this rank on the backbone's attention and FFN (with "personalization")
    checkpoint_every: int = 50
    keep_last: int = 3
    log_every: int = 1
    sample_every: int = 0  # 0: only at the end of each stage; <0: never
    num_sample_prompts: int = 2
    sample_steps: int = 10
    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI or sqlite:///work/mlflow.db
    experiment: str = "video-alchemist-train"
    run_name: str | None = None
    data_rev: str | None = None  # DVC revision of the dataset, recorded in MLflow
    log_checkpoint_artifact: bool = True
    progress: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        self.stage = str(self.stage)
        if self.stage not in STAGES:
            raise TrainConfigError(f"stage={self.stage!r} must be one of {STAGES}")
        if self.steps < 1:
            raise TrainConfigError(f"steps={self.steps} must be >= 1")
        if self.keep_last < 1:
            raise TrainConfigError(f"keep_last={self.keep_last} must be >= 1")
        if self.checkpoint_every < 1:
            raise TrainConfigError(f"checkpoint_every={self.checkpoint_every} must be >= 1")
        if self.data.batch_size < 1 or self.optim.grad_accum < 1:
            raise TrainConfigError(
                f"data.batch_size={self.data.batch_size} and optim.grad_accum={self.optim.grad_accum} must be >= 1"
            )
        if self.trainable not in TRAINABLE:
            raise TrainConfigError(f"trainable={self.trainable!r} must be one of {TRAINABLE}")
        if self.lora_rank < 0 or (self.lora_rank and self.trainable == "full"):
            raise TrainConfigError(
                f"lora_rank={self.lora_rank}: LoRA adapts a frozen backbone, so it needs trainable='personalization'"
            )
        if self.init_from is not None:
            self.init_from = str(self.init_from)
        if not Path(self.deepspeed_config).is_file():
            raise TrainConfigError(f"deepspeed_config={self.deepspeed_config} is not a file")

    def stage_steps(self, stage: int) -> int:
        return self.steps if stage == 1 or self.stage2_steps is None else self.stage2_steps

    def stages(self) -> list[int]:
        return [1, 2] if self.stage == "both" else [int(self.stage)]

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: MLflow params are flat."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
