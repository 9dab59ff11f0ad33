"""Samples of a mined dataset (manifest.parquet + media/) as `model.batch.TrainingBatch`es.

A sample is the target clip (decoded with PyAV, frames evenly spaced over the clip, resized and centre-cropped
to the training size), its caption, the masked reference crops of each entity (augmented against
copy-paste) and the inpainted background. A sample whose files are missing or corrupt (a truncated clip
included, as validation judges it: `components/media.py`) is skipped with a warning and counted, never
fatal: one bad clip must not kill a long run.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from components.manifest import read_manifest
from components.media import VideoError, read_video
from components.train.augment import augment_reference
from components.train.config import AugmentConfig, DataConfig, SampleSize
from components.train.sampler import ResumableSampler
from model.generator import fit_square
from model.images import ImageDecodeError, read_rgb8

log = logging.getLogger(__name__)


class SampleError(RuntimeError):
    """One sample cannot be read (missing or corrupt file); the loader skips it."""


@dataclass
class Sample:
    sample_id: str
    video: torch.Tensor  # [3, T, H, W] in [-1, 1]
    caption: str
    entities: list[tuple[str, torch.Tensor]]  # (word, [k, 3, s, s] in [0, 1])
    background: torch.Tensor | None  # [1, 3, s, s] in [0, 1]


@dataclass
class Batch:
    """A collated micro-batch plus the bookkeeping the trainer needs (data position, skipped samples)."""

    training: Any  # model.batch.TrainingBatch
    sample_ids: list[str]
    num_indices: int  # sampler indices consumed, including skipped samples
    skipped: list[str] = field(default_factory=list)

    def pin_memory(self) -> Batch:
        if self.training is not None:
            self.training = self.training.map_tensors(lambda t: t.pin_memory())
        return self

    def to(self, device: torch.device | str) -> Batch:
        non_blocking = torch.device(device).type == "cuda"
        if self.training is not None:
            self.training = self.training.map_tensors(lambda t: t.to(device, non_blocking=non_blocking))
        return self


class ManifestDataset(Dataset):
    """Index with `(epoch, index)` (from `ResumableSampler`) or a plain index; returns `Sample` or None."""

    def __init__(
        self,
        dataset_dir: Path,
        size: SampleSize,
        split: str | None = "train",
        augment: AugmentConfig | None = None,
        p_background: float = 1.0,
        cache_dir: Path | None = None,
        seed: int = 0,
    ) -> None:
        self.root = Path(dataset_dir)
        self.rows = read_manifest(self.root, split)
        self.size, self.augment, self.p_background, self.seed = size, augment, p_background, seed
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[str, Sample | None]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        row = self.rows[index]
        try:
            return row["sample_id"], self.load(row, np.random.default_rng([self.seed, epoch, index]))
        except (SampleError, VideoError, OSError, ValueError) as err:
            log.warning("skipping sample %s: %s", row.get("sample_id"), err)
            return row["sample_id"], None

    def load(self, row: dict[str, Any], rng: np.random.Generator) -> Sample:
        video = torch.from_numpy(self.clip(row)).permute(3, 0, 1, 2).float() / 127.5 - 1.0
        caption = row["caption"]
        entities = []
        usable = [e for e in row["entities"] if e.get("reference_paths")]
        if len(usable) > self.size.max_entities:
            keep = sorted(rng.choice(len(usable), self.size.max_entities, replace=False).tolist())
            usable = [usable[i] for i in keep]
        for entity in usable:
            paths = list(entity["reference_paths"])
            if len(paths) > self.size.max_references:
                paths = [paths[i] for i in rng.choice(len(paths), self.size.max_references, replace=False)]
            images = torch.stack([self.reference(p, rng) for p in paths])
            entities.append((entity_word(caption, entity), images))
        background = None
        if row.get("background_path") and rng.random() < self.p_background:
            background = self.reference(row["background_path"], rng, augment=False)[None]
        return Sample(row["sample_id"], video, caption, entities, background)

    def clip(self, row: dict[str, Any]) -> np.ndarray:
        """uint8 [T, H, W, 3], from the disk cache when enabled."""
        s = self.size
        path = self.root / row["video_path"]
        if self.cache_dir is None:
            return read_video(path, count=s.frames, cover=(s.height, s.width)).frames
        key = row.get("sha256") or hashlib.sha256(str(path).encode()).hexdigest()
        cached = self.cache_dir / f"{key}_{s.frames}x{s.height}x{s.width}.npy"
        if cached.is_file():
            return np.load(cached)
        frames = read_video(path, count=s.frames, cover=(s.height, s.width)).frames
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, frames)
        os.replace(tmp, cached)  # atomic: concurrent workers never read a half-written file
        return frames

    def reference(self, rel_path: str, rng: np.random.Generator, augment: bool = True) -> torch.Tensor:
        """[3, s, s] float in [0, 1]: padded to a square with its corner colour, resized, augmented."""
        path = self.root / rel_path
        if not path.is_file():
            raise SampleError(f"reference image {path} does not exist")
        try:
            image = torch.from_numpy(read_rgb8(path).astype(np.float32) / 255.0)
        except ImageDecodeError as error:
            raise SampleError(str(error)) from None
        image = fit_square(image.permute(2, 0, 1)[None], self.size.reference_size)[0].permute(1, 2, 0).numpy()
        if augment and self.augment is not None:
            image = augment_reference(image, self.augment, rng)
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)


def entity_word(caption: str, entity: dict[str, Any]) -> str:
    """The entity's text as it appears in the caption (its character span when valid, else its word)."""
    start, end = entity.get("token_start"), entity.get("token_end")
    if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(caption):
        return caption[start:end]
    return entity["word"]


def collate(items: list[tuple[str, Sample | None]]) -> Batch:
    """Drops skipped samples; a batch may come out empty (the trainer then draws the next one)."""
    from model.batch import EntityReference, TrainingBatch

    samples = [s for _, s in items if s is not None]
    skipped = [sid for sid, s in items if s is None]
    training = None
    if samples:
        training = TrainingBatch(
            video=torch.stack([s.video for s in samples]),
            prompts=[s.caption for s in samples],
            entities=[[EntityReference(word, images) for word, images in s.entities] for s in samples],
            backgrounds=[s.background for s in samples],
        )
    return Batch(training, [s.sample_id for s in samples], len(items), skipped)


def build_loader(dataset: Any, data: DataConfig, sampler: ResumableSampler, pin_memory: bool) -> DataLoader:
    """Raw clips (`ManifestDataset`) or the encode-once cache (`FeatureDataset`, its own collate)."""
    return DataLoader(
        dataset,
        batch_size=data.batch_size,
        sampler=sampler,
        num_workers=data.num_workers,
        collate_fn=getattr(dataset, "collate_batch", collate),
        pin_memory=pin_memory,
        persistent_workers=False,  # the sampler position changes between iterators (resume, epochs)
        drop_last=False,
    )
