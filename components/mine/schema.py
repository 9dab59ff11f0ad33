"""Arrow schemas of `manifest.parquet` and `rejects.parquet` (the mined-dataset contract)."""

import pyarrow as pa
import pyarrow.parquet as pq

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

REJECTS = pa.schema(
    [("sample_id", pa.string()), ("source", pa.string()), ("stage", pa.string()), ("reason", pa.string())]
)


def write_table(rows: list[dict], schema: pa.Schema, path) -> None:
    """Write rows (dicts keyed by the schema's fields) as parquet, typed by `schema` even when empty."""
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
