"""dvc.yaml: the same DAG as DVC stages, calling `alchemist` commands and options that exist."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

from typer.testing import CliRunner

from pipelines.cli import app

REPO = Path(__file__).resolve().parents[2]
ORDER = ["embedded", "mine", "validate", "train", "evaluate", "promote"]


def load_stages(tmp_path: Path) -> dict:
    """Stages as DVC itself parses them (variables interpolated), from a scratch DVC repository."""
    from dvc.repo import Repo

    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    Repo.init(str(tmp_path), no_scm=True).close()
    with Repo(str(tmp_path)) as repo:
        return {stage.name: stage for stage in repo.index.stages}


def test_stages_chain_like_the_pipeline(tmp_path):
    stages = load_stages(tmp_path)
    assert list(stages) == ORDER
    outs = {name: {str(o.def_path) for o in stage.outs} for name, stage in stages.items()}
    for upstream, downstream in zip(ORDER, ORDER[1:], strict=False):
        deps = {str(d.def_path) for d in stages[downstream].deps}
        assert any(dep == out or dep.startswith(out + "/") for dep in deps for out in outs[upstream]), (
            f"stage {downstream} does not depend on {upstream}'s output"
        )


def test_stage_commands_exist_with_their_options(tmp_path):
    runner = CliRunner()
    for name, stage in load_stages(tmp_path).items():
        command = re.sub(r'"\$\(python -c .*?\)\)"', "RUN_ID", stage.cmd, flags=re.S)
        words = shlex.split(command)
        assert words[0] == "alchemist", f"stage {name} runs {words[0]!r}"
        sub = words[1:3] if words[1] == "data" else words[1:2]
        help_text = runner.invoke(app, [*sub, "--help"], terminal_width=400).output
        for option in (w for w in words if w.startswith("--")):
            assert option in help_text, f"stage {name}: `alchemist {' '.join(sub)}` has no option {option}"
