"""The mined dataset's manifest as training reads it: the rows of `manifest.parquet`, checked for what
training needs. Light (pyarrow only), so a command checks a dataset before torch and DeepSpeed load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

REQUIRED_COLUMNS = ("sample_id", "caption", "video_path", "entities")


class ManifestError(ValueError):
    """The dataset folder or its manifest cannot be trained on."""


def read_manifest(dataset_dir: Path, split: str | None) -> list[dict[str, Any]]:
    """Rows of `manifest.parquet`, checked for the columns training needs."""
    path = Path(dataset_dir) / "manifest.parquet"
    if not path.is_file():
        raise ManifestError(f"{path} not found: expected a mined dataset folder (manifest.parquet + media/)")
    table = pq.read_table(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ManifestError(f"{path} lacks columns {missing}; it has {table.column_names}")
    rows = table.to_pylist()
    if split is not None:
        rows = [r for r in rows if r.get("split") == split]
    if not rows:
        raise ManifestError(f"{path} has no rows for split={split!r}")
    return rows
