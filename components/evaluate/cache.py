"""On-disk embedding cache keyed by (content sha256, evaluator model id, kind).

Re-evaluating the same videos with the same evaluators reads embeddings instead of recomputing them,
and ranks of a distributed run share it through the filesystem. Writes go to a temporary file and are
renamed, so a reader never sees half an entry.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np


class EmbeddingCache:
    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root else None
        self.hits = 0
        self.misses = 0

    def _path(self, sha: str, model_id: str, kind: str) -> Path:
        assert self.root is not None
        model = hashlib.sha256(model_id.encode()).hexdigest()[:16]
        return self.root / model / kind / f"{sha}.npz"

    def get(self, sha: str, model_id: str, kind: str) -> dict[str, np.ndarray] | None:
        if self.root is None:
            return None
        path = self._path(sha, model_id, kind)
        if not path.is_file():
            self.misses += 1
            return None
        self.hits += 1
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def put(self, sha: str, model_id: str, kind: str, arrays: dict[str, np.ndarray]) -> None:
        if self.root is None:
            return
        path = self._path(sha, model_id, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
