"""Where DeepSpeed's JIT-built CPU op lives, and why a killed build can never hang a later run.

DeepSpeed compiles its shared-memory communication op with torch's `cpp_extension` on first use. Two things
go wrong with torch's default cache (`~/.cache/torch_extensions`): two checkouts with different virtual
environments rebuild the same folder in turn (the build flags name the environment), and a build that is
killed leaves its `lock` file behind, after which every later run waits on it forever, silently. So each
virtual environment gets its own cache, and a lock older than any real build is removed with a notice.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

OP_NAME = "deepspeed_shm_comm"
STALE_LOCK_S = 15 * 60  # the build takes about a minute on 2 cores; a lock this old belongs to a dead build


def extension_cache() -> Path:
    """TORCH_EXTENSIONS_DIR when set; inside a virtual environment, a folder of its own; else torch's default."""
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return Path(os.environ["TORCH_EXTENSIONS_DIR"])
    if sys.prefix != sys.base_prefix and os.access(sys.prefix, os.W_OK):
        return Path(sys.prefix) / "torch_extensions"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torch_extensions"


def op_built() -> bool:
    return any(extension_cache().glob(f"**/{OP_NAME}/*.so"))


def prepare_op_cache(now: float | None = None) -> Path:
    """Point torch at this environment's cache and clear a dead build's lock; returns the cache folder."""
    cache = extension_cache()
    os.environ["TORCH_EXTENSIONS_DIR"] = str(cache)
    now = time.time() if now is None else now
    for lock in cache.glob(f"**/{OP_NAME}/lock"):
        age = now - lock.stat().st_mtime
        if age > STALE_LOCK_S:
            print(f"removing {lock}: left {age / 60:.0f} min ago by a DeepSpeed op build that was stopped")
            lock.unlink(missing_ok=True)
    return cache
