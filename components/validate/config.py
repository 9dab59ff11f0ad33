"""What a valid mined dataset must satisfy; every bound is a field so a project can tighten or relax it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ValidationConfig:
    """Bounds for the Great Expectations suite over a mined dataset (see `manifest.parquet` contract)."""

    min_frames: int = 2
    max_frames: int = 4096
    min_size: int = 16  # pixels, for both width and height
    max_size: int = 4096
    min_fps: float = 1.0
    max_fps: float = 240.0
    min_entities: int = 1
    max_entities: int = 16
    min_references: int = 1  # masked reference crops per entity
    keyframes: int = 3  # masks/boxes/areas per entity: first, middle and last frame
    allowed_kinds: tuple[str, ...] = ("subject", "object", "background")
    allowed_splits: tuple[str, ...] = ("train", "val", "test")
    min_samples_per_split: dict[str, int] = field(default_factory=lambda: {"train": 1})
    check_sha256: bool = True  # re-hash every video against the manifest's sha256
    max_listed_rows: int = 20  # offending row ids listed per failed expectation in the terminal summary

    def __post_init__(self) -> None:
        for low, high in (("min_frames", "max_frames"), ("min_size", "max_size"), ("min_fps", "max_fps")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low}={getattr(self, low)} must not exceed {high}={getattr(self, high)}")
        unknown = sorted(set(self.min_samples_per_split) - set(self.allowed_splits))
        if unknown:
            raise ValueError(
                f"min_samples_per_split names splits {unknown} outside allowed_splits={list(self.allowed_splits)}"
            )
