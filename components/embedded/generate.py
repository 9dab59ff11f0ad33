"""Write the embedded dataset: raw videos + captions (what the miner reads) and the ground truth kept aside.

Layout of `out`:
    videos/emb-00000.mp4 ...           raw clips, H.264
    captions.jsonl                     {"file": "emb-00000.mp4", "caption": "..."} per line
    ground_truth/ground_truth.parquet  one row per (sample, entity), background entity included
    ground_truth/masks/<sample>/<word>/<frame:05d>.png   exact visible masks (0/255), every frame
    ground_truth/backgrounds/<sample>.png                clean background
    ground_truth/identities/<identity>.png               the cut-out photo of each identity (RGBA)
    ground_truth/embedded.json         generator config and seed
The masks folder uses the layout the miner's existing-mask backend reads, so the ground truth doubles as a
dataset that ships its own masks. `components/ground_truth.py` reads it back.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from components.embedded.compose import EmbeddedConfig, plan_sample, render_sample
from components.embedded.identities import BACKDROPS, IDENTITIES, identity_crop
from components.ground_truth import GROUND_TRUTH
from components.media import write_mp4


@dataclass(frozen=True)
class EmbeddedDataset:
    """Where the generated dataset lives."""

    root: Path
    videos: Path
    captions: Path
    ground_truth: Path
    num_samples: int


def generate_embedded_dataset(
    out: str | Path,
    samples: int = 24,
    seed: int = 0,
    config: EmbeddedConfig | None = None,
    progress: bool = True,
) -> EmbeddedDataset:
    """Generate `samples` clips deterministically from `seed` into `out` (created; existing files replaced)."""
    if samples < 1:
        raise ValueError(f"samples={samples} must be at least 1")
    config = config or EmbeddedConfig()
    root = Path(out)
    videos, truth = root / "videos", root / GROUND_TRUTH
    for folder in (videos, truth / "masks", truth / "backgrounds", truth / "identities"):
        folder.mkdir(parents=True, exist_ok=True)
    for name in IDENTITIES:
        crop, mask = identity_crop(name)
        rgba = np.dstack([crop, mask.astype(np.uint8) * 255])
        cv2.imwrite(str(truth / "identities" / f"{name}.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    rows, captions = [], []
    for index in tqdm(range(samples), desc="embedded clips", disable=not progress):
        plan = plan_sample(np.random.default_rng([seed, index]), config)
        rendered = render_sample(plan, config)
        sample_id = f"emb-{index:05d}"
        write_mp4(rendered.frames, videos / f"{sample_id}.mp4", config.fps)
        captions.append({"file": f"{sample_id}.mp4", "caption": plan.caption})
        background_path = f"backgrounds/{sample_id}.png"
        cv2.imwrite(str(truth / background_path), cv2.cvtColor(rendered.background, cv2.COLOR_RGB2BGR))
        for entity in plan.entities:
            identity = IDENTITIES[entity.identity]
            mask_paths = []
            for t, mask in enumerate(rendered.masks[entity.identity]):
                path = f"masks/{sample_id}/{entity.word}/{t:05d}.png"
                (truth / path).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(truth / path), mask.astype(np.uint8) * 255)
                mask_paths.append(path)
            rows.append(
                _row(sample_id, plan.caption, entity.word, identity.kind, entity.identity, mask_paths)
            )
            rows[-1]["background_path"] = background_path
        backdrop = BACKDROPS[plan.backdrop]
        rows.append(_row(sample_id, plan.caption, backdrop.word, "background", backdrop.name, []))
        rows[-1]["background_path"] = background_path
    (root / "captions.jsonl").write_text("".join(json.dumps(c) + "\n" for c in captions))
    pd.DataFrame(rows).to_parquet(truth / "ground_truth.parquet", index=False)
    meta = {"seed": seed, "samples": samples, "config": asdict(config)}
    (truth / "embedded.json").write_text(json.dumps(meta, indent=2))
    return EmbeddedDataset(root, videos, root / "captions.jsonl", truth, samples)


def _row(sample_id: str, caption: str, word: str, kind: str, identity: str, mask_paths: list[str]) -> dict:
    match = re.search(rf"\b{re.escape(word)}\b", caption)
    if match is None:
        raise RuntimeError(f"caption {caption!r} of {sample_id} does not name its entity {word!r}")
    return {
        "sample_id": sample_id,
        "file": f"{sample_id}.mp4",
        "caption": caption,
        "word": word,
        "kind": kind,
        "identity": identity,
        "token_start": match.start(),
        "token_end": match.end(),
        "mask_paths": mask_paths,
    }
