"""The local run's terminal: one line per step with its key result, the raw log kept whole."""

from __future__ import annotations

import io
import json
from pathlib import Path

from pipelines.progress import StepConsole, dag_sorted, key_result


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def executor_output(root: Path, task: str, output: dict) -> Path:
    path = root / task / "executor_output.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(output))
    return path


def kfp_task(console: StepConsole, clock: Clock, task: str, path: Path, seconds: float) -> None:
    """What kfp.local prints for one task: start, the executor input naming its output file, the end."""
    console.write(f"21:01:16.300 - INFO - Executing task \x1b[96m'{task}'\x1b[0m\n")
    console.write('    {\n        "outputFile": "' + str(path) + '"\n    }\n')
    console.write("    mining:  50%|#####     | 3/6 [00:01<00:01]\r    mining: 100%|##########| 6/6\n")
    clock.now += seconds
    path.parent.mkdir(parents=True, exist_ok=True)
    console.write(
        f"21:01:17.519 - INFO - Task \x1b[96m'{task}'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m\n"
    )


def test_one_line_per_step_with_its_key_result(tmp_path):
    log, terminal, clock = io.StringIO(), io.StringIO(), Clock()
    console = StepConsole(log, terminal, clock=clock)
    version = executor_output(
        tmp_path, "version", {"parameterValues": {"Output": "abc123.dir"}, "artifacts": {}}
    )
    merge = executor_output(
        tmp_path,
        "merge-shards",
        {"artifacts": {"dataset": {"artifacts": [{"metadata": {"samples": 11.0, "rejected": 1.0}}]}}},
    )
    kfp_task(console, clock, "merge-shards", merge, 3.5)
    kfp_task(console, clock, "version", version, 4.25)
    console.write("21:02:00.000 - INFO - Task train cache hit (key=0123456789ab); reusing outputs\n")
    lines = terminal.getvalue().splitlines()
    assert lines == [
        "  merge-shards      3.5 s  11 clips kept, 1 rejected",
        "  version           4.2 s  data revision abc123.dir",
        "  train          reused (unchanged inputs and code)",
    ]
    assert "outputFile" in log.getvalue() and "mining: 100%" in log.getvalue()  # the raw log is whole
    assert console.reused == ["train"]


def test_verbose_echoes_the_raw_log(tmp_path):
    terminal = io.StringIO()
    console = StepConsole(io.StringIO(), terminal, verbose=True, clock=Clock())
    console.write("    [KFP Executor] Got executor_input:\n")
    assert "Got executor_input" in terminal.getvalue()


def test_key_results_of_the_gate_validation_and_scores():
    assert key_result("promote", {"parameterValues": {"Output": "pass"}}) == "gate decision pass"
    summary = {"successful_expectations": 49, "evaluated_expectations": 49}
    validated = {
        "parameterValues": {"Output": True},
        "artifacts": {"summary": {"artifacts": [{"metadata": summary}]}},
    }
    assert key_result("validate", validated) == "passed, 49/49 expectations"
    scores = {"all_text_s": 0.06, "toy_reference_fidelity": 0.67, "random_weights": "clip"}
    scored = {"artifacts": {"scores": {"artifacts": [{"metadata": scores}]}}}
    assert (
        key_result("evaluate", scored)
        == "all_text_s 0.06, toy_reference_fidelity 0.67 (random-weight evaluators)"
    )


def test_steps_are_listed_in_dag_order():
    assert dag_sorted(["promote", "train-2", "mine-shard", "train", "plan-shards", "mine-shard"]) == [
        "plan-shards",
        "mine-shard",
        "mine-shard",
        "train",
        "train-2",
        "promote",
    ]


def test_cache_hits_logged_between_tasks_are_counted(tmp_path):
    import logging

    from pipelines.progress import captured

    with captured(tmp_path / "run.log") as console:
        logging.info("Task train cache hit (key=0123456789ab); skipping execution.")
    assert console.reused == ["train"]
    assert "cache hit" in (tmp_path / "run.log").read_text()
