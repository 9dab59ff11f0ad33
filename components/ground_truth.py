"""Reading the embedded dataset's ground truth, which `components/embedded/generate.py` writes.

The embedded world knows exactly where each entity is and what it looks like; the toy-world scores
(`components/evaluate/toyworld.py`), the reference check and the miner's benchmark read it here, so no step
imports the embedded dataset's generator to read what it wrote.

Layout under `<dataset>/ground_truth/`:
    ground_truth.parquet                   one row per (sample, entity), background entity included
    masks/<sample>/<word>/<frame:05d>.png  exact visible masks (0/255), every frame
    backgrounds/<sample>.png               clean background
    identities/<identity>.png              the cut-out photo of each identity (RGBA)
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

GROUND_TRUTH = "ground_truth"  # the folder inside a generated dataset


def load_ground_truth(root: str | Path) -> pd.DataFrame:
    """The ground-truth table of a generated dataset, with mask and background paths made absolute.

    `root` is the dataset folder (or its `ground_truth/` folder).
    """
    root = Path(root)
    truth = root if (root / "ground_truth.parquet").is_file() else root / GROUND_TRUTH
    table_path = truth / "ground_truth.parquet"
    if not table_path.is_file():
        raise FileNotFoundError(f"no ground_truth.parquet under {root}; generate the embedded dataset first")
    table = pd.read_parquet(table_path)
    table["mask_paths"] = table["mask_paths"].map(lambda paths: [str(truth / p) for p in paths])
    table["background_path"] = table["background_path"].map(lambda p: str(truth / p))
    return table


def load_mask(path: str | Path) -> np.ndarray:
    """A mask PNG as (H, W) bool."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise FileNotFoundError(f"cannot read mask {path}")
    return mask > 127
