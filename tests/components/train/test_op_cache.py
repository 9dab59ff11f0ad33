"""A DeepSpeed op build killed mid-way must not hang every later training run on its lock."""

import os
import time

from components.train import op_cache


def test_a_dead_builds_lock_is_removed_and_a_live_one_kept(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    dead = tmp_path / "py311_cpu" / op_cache.OP_NAME / "lock"
    dead.parent.mkdir(parents=True)
    dead.touch()
    old = time.time() - op_cache.STALE_LOCK_S - 60
    os.utime(dead, (old, old))
    assert op_cache.prepare_op_cache() == tmp_path
    assert not dead.exists() and "stopped" in capsys.readouterr().out

    live = tmp_path / "py312_cpu" / op_cache.OP_NAME / "lock"
    live.parent.mkdir(parents=True)
    live.touch()
    op_cache.prepare_op_cache()
    assert live.exists()  # a build running now keeps its lock


def test_each_virtual_environment_has_its_own_cache(monkeypatch):
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    monkeypatch.setattr(op_cache.sys, "prefix", "/envs/a")
    monkeypatch.setattr(op_cache.sys, "base_prefix", "/usr")
    monkeypatch.setattr(op_cache.os, "access", lambda path, mode: True)
    assert str(op_cache.extension_cache()) == "/envs/a/torch_extensions"
    op_cache.prepare_op_cache()
    assert os.environ["TORCH_EXTENSIONS_DIR"] == "/envs/a/torch_extensions"
