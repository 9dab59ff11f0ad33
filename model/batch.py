"""What a training step consumes: videos, prompts and each sample's entity references."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class EntityReference:
    word: str  # as it appears (or as its singular/plural) in the prompt
    images: torch.Tensor  # (k, 3, h, w) in [0, 1]: one or more reference images


@dataclass
class TrainingBatch:
    video: torch.Tensor  # (B, 3, T, H, W) in [-1, 1]
    prompts: list[str]
    entities: list[list[EntityReference]]
    backgrounds: list[torch.Tensor | None]  # (k, 3, h, w) in [0, 1] or None

    def __post_init__(self) -> None:
        b = self.video.shape[0]
        if self.video.ndim != 5 or self.video.shape[1] != 3:
            raise ValueError(f"video must be (B, 3, T, H, W); got {tuple(self.video.shape)}")
        for name, items in (
            ("prompts", self.prompts),
            ("entities", self.entities),
            ("backgrounds", self.backgrounds),
        ):
            if len(items) != b:
                raise ValueError(f"{name} has {len(items)} items; expected one per video ({b})")

    def to(self, device: torch.device | str) -> TrainingBatch:
        return TrainingBatch(
            video=self.video.to(device),
            prompts=self.prompts,
            entities=[[EntityReference(e.word, e.images.to(device)) for e in s] for s in self.entities],
            backgrounds=[None if b is None else b.to(device) for b in self.backgrounds],
        )
