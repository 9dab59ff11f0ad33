"""The mined-dataset contract: the arrow schemas of `manifest.parquet` and `rejects.parquet`, and the one reader.

Mining writes these schemas, validation checks a manifest's schema against them (then the values), and
training, evaluation and the embedded checks read rows through `read_manifest`. Light (pyarrow only), so a
command checks a dataset before torch loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST_FILE = "manifest.parquet"

ENTITY = pa.struct(
    [
        ("word", pa.string()),
        ("kind", pa.string()),
        ("token_start", pa.int64()),
        ("token_end", pa.int64()),
        ("reference_paths", pa.list_(pa.string())),
        ("mask_paths", pa.list_(pa.string())),
        ("boxes", pa.list_(pa.list_(pa.float64()))),
        ("scores", pa.list_(pa.float64())),
        ("areas", pa.list_(pa.float64())),
    ]
)

MANIFEST = pa.schema(
    [
        ("sample_id", pa.string()),
        ("source", pa.string()),
        ("split", pa.string()),
        ("caption", pa.string()),
        ("video_path", pa.string()),
        ("fps", pa.float64()),
        ("num_frames", pa.int64()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("sha256", pa.string()),
        ("clip_start", pa.int64()),
        ("clip_end", pa.int64()),
        ("background_path", pa.string()),
        ("entities", pa.list_(ENTITY)),
    ]
)
NULLABLE = frozenset({"background_path"})  # a sample without a usable background has none
# What every reader of rows needs; `split` too when it selects by split.
READ_COLUMNS = ("sample_id", "caption", "video_path", "entities")

REJECTS = pa.schema(
    [("sample_id", pa.string()), ("source", pa.string()), ("stage", pa.string()), ("reason", pa.string())]
)


class ManifestError(ValueError):
    """The dataset folder has no readable manifest, or not the rows a step needs."""


def write_table(rows: list[dict], schema: pa.Schema, path: str | Path) -> None:
    """Write rows (dicts keyed by the schema's fields) as parquet, typed by `schema` even when empty."""
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def read_table(dataset_dir: str | Path) -> pa.Table:
    """The whole `manifest.parquet` of a mined dataset folder, as written (no column checked)."""
    path = Path(dataset_dir) / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(f"{path} not found: expected a mined dataset folder ({MANIFEST_FILE} + media/)")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise ManifestError(f"{path} is not a readable parquet file: {err}") from err


def read_manifest(dataset_dir: str | Path, split: str | None = None) -> list[dict[str, Any]]:
    """The rows of `split` (every row when None), once the columns readers need are there and rows remain."""
    path = Path(dataset_dir) / MANIFEST_FILE
    table = read_table(dataset_dir)
    needed = (*READ_COLUMNS, "split") if split is not None else READ_COLUMNS
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise ManifestError(f"{path} lacks columns {missing}; it has {table.column_names}")
    rows = table.to_pylist()
    if split is not None:
        splits = sorted({str(r["split"]) for r in rows})
        rows = [r for r in rows if r["split"] == split]
        if not rows:
            raise ManifestError(f"{path} has no rows for split={split!r} (splits: {splits})")
    if not rows:
        raise ManifestError(f"{path} has no rows")
    return rows


def accepts(expected: pa.DataType, observed: pa.DataType) -> bool:
    """Whether a column typed `observed` holds what the contract types `expected`: any string, integer or
    (for a float field) number width, list or large list; a struct's own fields are checked one by one."""
    if pa.types.is_string(expected):
        return pa.types.is_string(observed) or pa.types.is_large_string(observed)
    if pa.types.is_integer(expected):
        return pa.types.is_integer(observed)
    if pa.types.is_floating(expected):
        return pa.types.is_integer(observed) or pa.types.is_floating(observed)
    if pa.types.is_struct(expected):
        return pa.types.is_struct(observed)
    is_list = pa.types.is_list(observed) or pa.types.is_large_list(observed)
    return is_list and accepts(expected.value_type, observed.value_type)


def type_name(expected: pa.DataType) -> str:
    """The contract type in words, as reports show it (`list<list<number>>`)."""
    if pa.types.is_list(expected):
        return f"list<{type_name(expected.value_type)}>"
    if pa.types.is_floating(expected):
        return "number"
    if pa.types.is_struct(expected):
        return "struct"
    return "integer" if pa.types.is_integer(expected) else str(expected)
