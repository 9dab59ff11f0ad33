"""What a person sees while the local pipeline runs: one line per step, the raw logs in a file.

kfp.local prints each step's executor input (a JSON dump), its streamed output and its outputs to
`sys.stdout`. `StepConsole` stands in for stdout and stderr during the run: every byte goes to the log
file, and the terminal gets one line per finished step (name, seconds, its key result read from the step's
executor output), in the order the DAG ran them. `verbose=True` echoes the raw logs as well.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from components.train.op_cache import op_built

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"Executing task '([^']+)'")
FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
CACHE_HIT = re.compile(r"Task (\S+) cache hit")
OUTPUT_FILE = re.compile(r'"outputFile": "(\S+/([^/]+)/executor_output\.json)"')
PROGRESS_BAR = re.compile(r"\d+%\|")  # a tqdm update line
DEEPSPEED_NOTE = "building DeepSpeed's CPU op once, about a minute (later runs reuse it)"
HEADLINE_SCORES = ("all_text_s", "all_vid_s", "all_subj_s", "toy_reference_fidelity")
# The DAG's order, for summaries; tasks not listed sort last.
DAG_ORDER = (
    "plan-shards",
    "mine-shard",
    "merge-shards",
    "version",
    "validate",
    "train",
    "train-2",
    "evaluate",
    "export",
    "promote",
    "summarize",
    "record-outcome",
)


def dag_sorted(tasks: list[str]) -> list[str]:
    """Task names in DAG order (duplicates, like the mining shards, kept together)."""
    rank = {name: i for i, name in enumerate(DAG_ORDER)}
    return sorted(tasks, key=lambda name: rank.get(name, len(DAG_ORDER)))


def _metadata(output: dict, artifact: str) -> dict:
    entries = output.get("artifacts", {}).get(artifact, {}).get("artifacts", [])
    return entries[0].get("metadata", {}) if entries else {}


def _number(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _metrics(meta: dict, limit: int = 4) -> str:
    shown = [(k, v) for k, v in meta.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    return ", ".join(f"{k} {_number(v)}" for k, v in shown[:limit])


def key_result(task: str, output: dict) -> str:
    """The one thing a person wants to know about a finished step, from its executor output."""
    params = output.get("parameterValues", {})
    if task == "plan-shards":
        return f"{len(params.get('Output', []))} shards"
    if task in ("mine-shard", "merge-shards"):
        meta = _metadata(output, "dataset")
        return f"{int(meta.get('samples', 0))} clips kept, {int(meta.get('rejected', 0))} rejected"
    if task == "version":
        return f"data revision {params.get('Output', '?')}"
    if task == "validate":
        meta = _metadata(output, "summary")
        verdict = "passed" if params.get("Output") else "FAILED"
        good, total = meta.get("successful_expectations", 0), meta.get("evaluated_expectations", 0)
        return f"{verdict}, {int(good)}/{int(total)} expectations"
    if task.startswith("train"):
        return _metrics(_metadata(output, "metrics"))
    if task == "evaluate":
        meta = _metadata(output, "scores")
        shown = [(k, meta[k]) for k in HEADLINE_SCORES if k in meta]
        caveat = " (random-weight evaluators)" if meta.get("random_weights") else ""
        return ", ".join(f"{k} {_number(v)}" for k, v in shown) + caveat
    if task == "export":
        meta = _metadata(output, "repository")
        return f"{meta.get('model_name', '?')} version {_number(params.get('Output', '?'))}"
    if task == "promote":
        return f"gate decision {params.get('Output', '?')}"
    return ""


class StepConsole(io.TextIOBase):
    """A text stream: the raw run log to `log`, one line per step to `terminal`."""

    def __init__(
        self, log: TextIO, terminal: TextIO, verbose: bool = False, clock: Callable = time.monotonic
    ):
        self.log, self.terminal, self.verbose, self.clock = log, terminal, verbose, clock
        self.tty = terminal.isatty()
        self._pending = ""
        self._lock = threading.Lock()  # ParallelFor iterations run in threads and print at the same time
        self._started: dict[str, list[float]] = {}
        self._outputs: dict[str, list[Path]] = {}
        self._announced_build = False
        self._bar_shown = False
        self.finished: list[tuple[str, str, float]] = []  # (task, status, seconds) in finishing order
        self.reused: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.log.closed:  # a logger kept a handle on this stream after the run: pass its lines on
            return self.terminal.write(text)
        with self._lock:
            self.log.write(text)
            self._pending += text
            *lines, self._pending = re.split(r"\r|\n", self._pending)
            for line in lines:
                self._line(line)
        return len(text)

    def flush(self) -> None:
        if not self.log.closed:
            self.log.flush()
        self.terminal.flush()

    def say(self, text: str) -> None:
        """One line for the person at the terminal (also in the log)."""
        if not self.log.closed:
            self.log.write(text + "\n")
        self._say(text)

    def _line(self, raw: str) -> None:
        line = ANSI.sub("", raw)
        if self.verbose:
            if self.tty and PROGRESS_BAR.search(line):
                self._bar(line.strip())
            else:
                self._say(line, indent="")
            return
        if match := OUTPUT_FILE.search(line):
            self._outputs.setdefault(match.group(2), []).append(Path(match.group(1)))
        if match := STARTED.search(line):
            self._started.setdefault(match.group(1), []).append(self.clock())
            if match.group(1).startswith("train") and not self._announced_build and not op_built():
                self._announced_build = True
                self._say(f"{'':<14} {DEEPSPEED_NOTE}")
        elif match := FINISHED.search(line):
            self._finish(match.group(1), match.group(2))
        elif match := CACHE_HIT.search(line):
            self.reused.append(match.group(1))
            self._say(f"{match.group(1):<14} reused (unchanged inputs and code)")
        elif self.tty and PROGRESS_BAR.search(line):
            self._bar(line.strip())

    def _finish(self, task: str, status: str) -> None:
        starts = self._started.get(task) or [self.clock()]
        seconds = self.clock() - starts.pop(0)
        self.finished.append((task, status, seconds))
        if self.verbose:
            return
        result = ""
        written = [p for p in self._outputs.get(task, []) if p.is_file()]
        if status == "SUCCESS" and written:
            path = written[0]  # parallel iterations of one task finish in any order
            self._outputs[task].remove(path)
            try:
                result = key_result(task, json.loads(path.read_text()))
            except (OSError, ValueError):
                result = ""
        mark = "" if status == "SUCCESS" else f"{status}  "
        self._say(f"{task:<14} {seconds:6.1f} s  {mark}{result}".rstrip())

    def _bar(self, text: str) -> None:
        width = 100
        self.terminal.write(f"\r\x1b[K  {text[:width]}")
        self.terminal.flush()
        self._bar_shown = True

    def _say(self, text: str, indent: str = "  ") -> None:
        if self._bar_shown:
            self.terminal.write("\r\x1b[K")
            self._bar_shown = False
        self.terminal.write(f"{indent}{text}\n")
        self.terminal.flush()


@contextlib.contextmanager
def captured(log_path: Path, verbose: bool = False) -> Iterator[StepConsole]:
    """Route stdout and stderr (kfp.local's logs, the steps' output, warnings) through a StepConsole."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    terminal, saved = sys.stdout, (sys.stdout, sys.stderr)
    root = logging.getLogger()
    with open(log_path, "a", buffering=1, encoding="utf-8") as log:
        console = StepConsole(log, terminal, verbose)
        # kfp.local logs cache hits between tasks, outside its own logging context: catch them too.
        handler, level = logging.StreamHandler(console), root.level
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        sys.stdout = sys.stderr = console
        try:
            yield console
        finally:
            sys.stdout, sys.stderr = saved
            root.removeHandler(handler)
            root.setLevel(level)
            console.flush()
