"""Sample videos during training: fixed prompts and references, generated from the EMA weights.

Seeing the same prompts at every checkpoint is how a reviewer notices drift or copy-paste in MLflow. Each
sample is written as an mp4 (H.264 through PyAV) and a GIF preview that MLflow's UI shows inline.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from components.media import write_gif, write_mp4
from components.train.dataset import ManifestDataset, entity_word
from components.train.ema import EMA


@dataclass
class SamplePrompt:
    sample_id: str
    prompt: str
    references: dict[str, list[np.ndarray]]  # word -> uint8 HxWx3
    background: np.ndarray | None


def fixed_prompts(dataset: ManifestDataset, count: int) -> list[SamplePrompt]:
    """The first `count` rows with references (manifest order is stable, so prompts never change)."""
    prompts = []
    limit = dataset.size.max_entities
    for row in dataset.rows:
        if len(prompts) >= count:
            break
        try:
            refs = {
                entity_word(row["caption"], e): [load_rgb(dataset.root / e["reference_paths"][0])]
                for e in row["entities"]
                if e.get("reference_paths")
            }
            background = (
                load_rgb(dataset.root / row["background_path"]) if row.get("background_path") else None
            )
        except OSError:
            continue
        if refs:
            refs = dict(list(refs.items())[:limit])
            prompts.append(SamplePrompt(row["sample_id"], row["caption"], refs, background))
    return prompts


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def generate_samples(
    model: torch.nn.Module, ema: EMA, prompts: list[SamplePrompt], out_dir: Path, steps: int, seed: int
) -> list[Path]:
    """Generate each prompt with the EMA weights on a copy of the model; returns the files written."""
    from model.generator import Generator

    shadow = copy.deepcopy(model)
    ema.copy_to(shadow)
    device = next(shadow.parameters()).device
    generator = Generator(shadow.float(), device=device)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, item in enumerate(prompts):
        video = generator.generate(
            item.prompt, references=item.references, background=item.background, steps=steps, seed=seed + i
        )
        stem = out_dir / f"{i:02d}-{item.sample_id}"
        written += [write_mp4(video, stem.with_suffix(".mp4")), write_gif(video, stem.with_suffix(".gif"))]
        (stem.with_suffix(".txt")).write_text(item.prompt + "\n")
    return written
