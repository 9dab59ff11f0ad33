"""Every input of a training run checked before the process group and DeepSpeed start, and before torch loads:
the dataset, the model configuration, the output folder and one readable clip. A mistake then costs a second
and reads as one line, whether it comes from `alchemist train` or from a pipeline step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.configuration import CHECKPOINT_FIELDS, configure, preset_config
from components.manifest import ManifestError, read_manifest
from components.media import VideoError, read_video
from components.train.config import SampleSize, TrainConfig

RESULT_FILE = "result.json"


class ResumeError(RuntimeError):
    """The output folder holds a run that this configuration would silently overwrite or cannot continue."""


def sample_size(data: Any, model_config: Any) -> SampleSize:
    """The training sample size: the data options where given, else the model's video and image sizes."""
    video = model_config.video
    return SampleSize(
        frames=data.frames or video.frames,
        height=data.height or video.height,
        width=data.width or video.width,
        reference_size=data.reference_size or model_config.image.image_size,
        max_entities=video.max_entities,
        max_references=video.max_references,
    )


def preflight(config: TrainConfig) -> None:
    """Check every input before DeepSpeed and the process group start, so a mistake costs seconds, not a
    minute, and reads as one line: the dataset, the model configuration, the output folder, one readable clip."""
    from model.config import checkpoint_config

    rows = read_manifest(Path(config.data.manifest), config.data.split)  # ManifestError names the problem
    if config.init_from is None:
        model_config = preset_config(config.preset, config.model_overrides)
    elif not config.init_from.startswith("s3://"):
        model_config = configure(
            checkpoint_config(config.init_from), config.model_overrides, CHECKPOINT_FIELDS
        )
    else:
        model_config = None  # fetched by the stage itself
    for stage in config.stages():
        final = Path(config.out) / f"stage{stage}" / "final" / RESULT_FILE
        checkpoints = Path(config.out) / f"stage{stage}" / "checkpoints"
        if not config.resume and (final.is_file() or any(checkpoints.glob("step-*"))):
            raise ResumeError(f"--out {config.out} already holds stage {stage}; pass --resume or a new --out")
    if model_config is not None and config.data.features is None:
        size = sample_size(config.data, model_config)
        if not any_readable_clip(Path(config.data.manifest), rows, size):
            raise ManifestError(
                f"--dataset {config.data.manifest}: none of its {len(rows)} clips can be decoded"
            )


def any_readable_clip(root: Path, rows: list[dict[str, Any]], size: SampleSize) -> bool:
    for row in rows:
        try:
            read_video(root / row["video_path"], count=size.frames, cover=(size.height, size.width))
            return True
        except VideoError:
            continue
    return False
