"""A user's mistake in `alchemist train` is one line naming the input, found before DeepSpeed starts."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app


def run_train(*args: str) -> tuple[int, str, float]:
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["train", *args])
    return result.exit_code, result.output, time.perf_counter() - started


@pytest.fixture
def unreadable(mined_dataset: Path, tmp_path: Path) -> Path:
    """The mined dataset with every clip replaced by garbage."""
    copy = tmp_path / "unreadable"
    shutil.copytree(mined_dataset, copy)
    for clip in (copy / "media").glob("*.mp4"):
        clip.write_bytes(b"not a video")
    return copy


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing-manifest", "manifest.parquet not found"),
        ("unknown-preset", "preset='huge' is unknown"),
        ("missing-deepspeed", "is not a file"),
        ("bad-override", "dit has no field 'widht'"),
        ("all-unreadable", "none of its 8 clips can be decoded"),
    ],
)
def test_a_bad_input_is_one_line_before_anything_heavy(case, expected, mined_dataset, unreadable, tmp_path):
    args = {
        "missing-manifest": ["--dataset", str(tmp_path / "nowhere")],
        "unknown-preset": ["--dataset", str(mined_dataset), "--preset", "huge"],
        "missing-deepspeed": [
            "--dataset",
            str(mined_dataset),
            "--deepspeed-config",
            str(tmp_path / "ds.json"),
        ],
        "bad-override": ["--dataset", str(mined_dataset), "--set", "dit.widht=3"],
        "all-unreadable": ["--dataset", str(unreadable)],
    }[case]
    code, output, seconds = run_train(*args, "--out", str(tmp_path / "out"))
    assert code == 2
    assert output.startswith("error: ") and expected in output and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1
    assert seconds < 10  # no process group, no DeepSpeed op build


def test_a_finished_output_folder_needs_resume(mined_dataset, tmp_path):
    final = tmp_path / "out" / "stage1" / "final"
    final.mkdir(parents=True)
    (final / "result.json").write_text("{}")
    code, output, _ = run_train(
        "--dataset", str(mined_dataset), "--out", str(tmp_path / "out"), "--stage", "1"
    )
    assert code == 2 and "already holds stage 1; pass --resume or a new --out" in output
