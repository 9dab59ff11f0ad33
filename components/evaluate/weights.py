"""Where evaluator weights come from: a local path, or an s3:// URI fetched into the local cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def local_path(uri: str | Path) -> Path:
    """Local file/folder for `uri`; S3 goes through `components.storage.materialize` (imported lazily)."""
    if str(uri).startswith("s3://"):
        from components.storage import materialize

        return materialize(str(uri))
    path = Path(uri)
    if not path.exists():
        raise FileNotFoundError(
            f"evaluator weights {str(path)!r} do not exist (expected a local folder/file or s3:// URI)"
        )
    return path


def folder_fingerprint(path: Path) -> str:
    """Short content id of a weights folder/file (names, sizes and config text) for cache keys."""
    h = hashlib.sha256()
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
    for p in files:
        h.update(f"{p.relative_to(path.parent if path.is_file() else path)}:{p.stat().st_size}".encode())
        if p.suffix in {".json", ".yaml", ".txt"} and p.stat().st_size < 1_000_000:
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def config_fingerprint(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
