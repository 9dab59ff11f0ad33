"""The README's command walk-through, run as printed (only sizes and ports shrunk) in a fresh folder.

The README promises that its block works exactly as written; this test keeps the promise from drifting.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from serving.launcher import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
HEADING = "## The `alchemist` command line, step by step"
# README value -> the smallest that still exercises the step; every one must be in the block.
SMALLEST = {
    "--samples 48": "--samples 24",
    "--train-steps 60": "--train-steps 1",
    "--sample-steps 10": "--sample-steps 1",
    "--limit 4": "--limit 1",
}


def walkthrough_block(readme: str) -> str:
    """The first bash block after the walk-through heading."""
    section = readme[readme.index(HEADING) :]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, f"no bash block under {HEADING!r}"
    return match.group(1)


def shrink(block: str, ports: tuple[int, int, int]) -> str:
    for readme_value, small in SMALLEST.items():
        assert readme_value in block, f"the walk-through no longer has {readme_value!r}; update SMALLEST"
        block = block.replace(readme_value, small)
    serve = "serve --repository work/triton"
    assert serve in block and "localhost:8000" in block
    http, grpc, metrics = ports
    block = block.replace(serve, f"{serve} --http-port {http} --grpc-port {grpc} --metrics-port {metrics}")
    return block.replace("localhost:8000", f"localhost:{http}")


def test_readme_walkthrough_runs_as_printed(tmp_path):
    block = shrink(
        walkthrough_block((REPO / "README.md").read_text()), (free_port(), free_port(), free_port())
    )
    for name in (".venv", "infra"):  # what the block expects beside it in a checkout
        (tmp_path / name).symlink_to(REPO / name)
    (tmp_path / "work").mkdir()
    script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + block
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # Its own process group: on a timeout the server and steps it started go down with it.
    shell = subprocess.Popen(
        ["bash", "-c", script], cwd=tmp_path, env=env, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = shell.communicate(timeout=900)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
    assert shell.returncode == 0, output[-4000:]
    assert re.search(r"^run id: [0-9a-f]{32}", output, re.M), output[-2000:]
    assert (tmp_path / "work" / "video.mp4").stat().st_size > 0
    assert "what to expect" in output  # generate says what this model can make
