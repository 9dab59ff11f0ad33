"""What a training step consumes: raw videos, prompts and references, or what the frozen encoders made of them.

The frozen encoders (VAE, text, image) are most of a large model's cost and never change in training, so a
batch may arrive already encoded (`EncodedBatch`, from the encode-once cache); `VideoAlchemist.training_loss`
takes either and computes the same loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from model.binding import EntityTokens
from model.config import AlchemistConfig

TensorFn = Callable[[torch.Tensor], torch.Tensor]


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

    def map_tensors(self, fn: TensorFn) -> TrainingBatch:
        return TrainingBatch(
            video=fn(self.video),
            prompts=self.prompts,
            entities=[[EntityReference(e.word, fn(e.images)) for e in s] for s in self.entities],
            backgrounds=[None if b is None else fn(b) for b in self.backgrounds],
        )

    def to(self, device: torch.device | str) -> TrainingBatch:
        return self.map_tensors(lambda t: t.to(device))

    def video_tokens(self, config: AlchemistConfig) -> int:
        return config.video_tokens(*self.video.shape[2:])


@dataclass
class EncodedConditioning:
    """The frozen encoders' view of a batch's prompts and references: all the trained parts ever see."""

    text: torch.Tensor  # (B, L, D_text) text encoder states
    text_mask: torch.Tensor  # (B, L) bool
    null_text: torch.Tensor  # (1, L0, D_text): the empty prompt, shown where the prompt is dropped
    null_mask: torch.Tensor  # (1, L0) bool
    entities: list[list[EntityTokens]]  # per sample: each entity, then the background (word_tokens None)

    def map_tensors(self, fn: TensorFn) -> EncodedConditioning:
        def tokens(e: EntityTokens) -> EntityTokens:
            return EntityTokens(fn(e.image_tokens), None if e.word_tokens is None else fn(e.word_tokens))

        return EncodedConditioning(
            fn(self.text),
            fn(self.text_mask),
            fn(self.null_text),
            fn(self.null_mask),
            [[tokens(e) for e in sample] for sample in self.entities],
        )


@dataclass
class EncodedBatch:
    latents: torch.Tensor  # (B, C, t, h, w): the VAE's latents of the target clips
    conditioning: EncodedConditioning

    def map_tensors(self, fn: TensorFn) -> EncodedBatch:
        return EncodedBatch(fn(self.latents), self.conditioning.map_tensors(fn))

    def to(self, device: torch.device | str) -> EncodedBatch:
        return self.map_tensors(lambda t: t.to(device))

    def video_tokens(self, config: AlchemistConfig) -> int:
        return config.grid_tokens(tuple(self.latents.shape[2:]))
