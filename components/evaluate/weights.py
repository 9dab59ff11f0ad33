"""Identities of evaluator weights (folder contents or random-weight configs) for cache keys and reports."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


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
