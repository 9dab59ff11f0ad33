"""Run the whole pipeline on this machine: kfp.local, MLflow on SQLite, DVC with a local remote, local Triton.

Everything lands under one working folder (default `work/`):

    work/embedded/          the embedded dataset (raw videos + captions), generated once
    work/kfp/<run>/<task>/  task outputs of each pipeline run (kfp.local's pipeline_root)
    work/kfp/cache/         the step cache: one JSON per (step, inputs, code version)
    work/mlflow.db          MLflow tracking + model registry; artifacts in work/mlartifacts/
    work/dvc/, work/dvc-remote/   DVC repository and its local remote
    work/serving/           the Triton model repository the promotion gate publishes
    work/triton/            the local tritonserver's log and pid

Skip-if-unchanged: kfp.local only reuses a task's outputs when `enable_caching=True` is passed to
`kfp.local.init` (a bare `set_caching_options(True)` does nothing locally). Its key covers the component's
command (the wrapper's source), its arguments (artifacts by URI and metadata) and its environment variables;
the pipeline adds the hash of the library code each step runs as an environment variable, and mining is fed
a fingerprint of the input folder, so a change to code or data re-runs exactly the affected steps.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from components.evaluate.reference_check import ReferenceCheck
from pipelines.pipeline import EXPERIMENTS


class PipelineRunError(RuntimeError):
    """A step failed; `task` names it and `report` points at what explains the failure (if any)."""

    def __init__(self, message: str, task: str | None = None, report: Path | None = None) -> None:
        super().__init__(message)
        self.task = task
        self.report = report


@dataclass
class WorkPaths:
    """The working folder's layout (absolute paths: kfp.local runs steps as subprocesses)."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()

    @property
    def embedded(self) -> Path:
        return self.root / "embedded"

    @property
    def pipeline_root(self) -> Path:
        return self.root / "kfp"

    @property
    def cache(self) -> Path:
        return self.root / "kfp" / "cache"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def dvc_repo(self) -> Path:
        return self.root / "dvc"

    @property
    def dvc_remote(self) -> Path:
        return self.root / "dvc-remote"

    @property
    def serving_repository(self) -> Path:
        return self.root / "serving"

    @property
    def triton(self) -> Path:
        return self.root / "triton"


@dataclass
class LocalSettings:
    """The embedded run's knobs; the defaults are what `make demo` runs."""

    work: Path = Path("work")
    data: Path | None = None  # folder of videos; None: the embedded dataset (generated under work/)
    captions: Path | None = None  # captions file for `data`; None: <data>/captions.jsonl
    samples: int = 96  # embedded clips to generate (the demo's lane-word world)
    seed: int = 0
    shards: int = 2
    # `small` is the smallest preset that can paint a clean frame (model/README.md); `tiny` only makes noise.
    preset: str = "small"
    # The learnability benchmark's recipe (benchmarks/README.md), shortened to fit the demo's 15 minutes.
    stage1_steps: int = 60
    stage2_steps: int = 300
    learning_rate: float = 7e-4
    batch_size: int = 8
    warmup_steps: int = 30
    eval_steps: int = 10
    gate_policy: str = "demo"  # a policy bundled with components/promote, or a YAML file
    serve: bool = True
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    verbose: bool = False  # echo kfp.local's raw logs; they always go to <work>/logs/
    extra: dict[str, object] = field(default_factory=dict)  # any other pipeline parameter, by name

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"samples={self.samples} must be >= 1")
        if self.shards < 1:
            raise ValueError(f"shards={self.shards} must be >= 1")


@dataclass
class StepRecord:
    """What happened to each step of one run, in DAG order, and where its raw log is."""

    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    log: Path | None = None


def ensure_embedded(paths: WorkPaths, samples: int, seed: int) -> Path:
    """Generate the embedded dataset once; regenerate only when the sample count or seed changes.

    Regenerating identical clips would still change file times, and with them the data fingerprint that
    keys the mining cache, so an unchanged request leaves the folder alone.
    """
    from components.embedded.generate import generate_embedded_dataset
    from components.embedded.personalization import DEMO_WORLD

    stamp = paths.embedded / "request.json"
    wanted = {"samples": samples, "seed": seed, "world": json.loads(json.dumps(asdict(DEMO_WORLD)))}
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return paths.embedded
    generate_embedded_dataset(paths.embedded, samples=samples, seed=seed, config=DEMO_WORLD, progress=False)
    stamp.write_text(json.dumps(wanted))
    return paths.embedded


def prepare_tracking(paths: WorkPaths) -> None:
    """Create the experiments with artifact folders under work/, not ./mlruns of whatever the cwd is."""
    import mlflow

    from components.train.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG

    client = mlflow.MlflowClient(tracking_uri=paths.tracking_uri)
    for name in EXPERIMENTS.values():
        found = client.get_experiment_by_name(name)
        experiment_id = (
            found.experiment_id
            if found is not None
            else client.create_experiment(name, artifact_location=(paths.mlflow_artifacts / name).as_uri())
        )
        # a classic ML experiment, so the MLflow UI opens on its runs table (not GenAI traces)
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)


def pipeline_arguments(settings: LocalSettings, paths: WorkPaths) -> dict[str, object]:
    """The embedded run's parameters: local folders and the SQLite tracking store."""
    miner: dict[str, object] = {}
    if settings.data is None:
        root = ensure_embedded(paths, settings.samples, settings.seed)
        videos, captions, truth = root / "videos", root / "captions.jsonl", str(root)
        # Two equally sized entities: the offline motion miner tells them apart by size and so pairs crops
        # with the wrong words about half of the time (benchmarks/README.md); the demo reads the exact masks.
        miner = {"segmenter": "masks", "masks_dir": str(root / "ground_truth" / "masks")}
    else:
        videos = Path(settings.data).resolve()
        captions = Path(settings.captions).resolve() if settings.captions else videos / "captions.jsonl"
        truth = ""
    args: dict[str, object] = {
        "miner": miner,
        "data": str(videos),
        "captions": str(captions),
        "ground_truth": truth,
        "num_shards": settings.shards,
        "preset": settings.preset,
        "stage1_steps": settings.stage1_steps,
        "stage2_steps": settings.stage2_steps,
        "learning_rate": settings.learning_rate,
        "batch_size": settings.batch_size,
        "warmup_steps": settings.warmup_steps,
        "eval_steps": settings.eval_steps,
        "gate_policy": settings.gate_policy,
        "tracking_uri": paths.tracking_uri,
        "dvc_repo": str(paths.dvc_repo),
        "dvc_remote": str(paths.dvc_remote),
        "serving_repository": str(paths.serving_repository),
    }
    args.update(settings.extra)
    return args


def run_pipeline(settings: LocalSettings) -> tuple[WorkPaths, StepRecord, dict]:
    """Run the DAG with kfp.local; returns the paths, which steps ran or were reused, and the run summary.

    Raises PipelineRunError naming the failed step (and its report, if it wrote one).
    """
    from kfp import local

    from pipelines.pipeline import build_pipeline
    from pipelines.progress import captured, dag_sorted

    paths = WorkPaths(settings.work)
    paths.root.mkdir(parents=True, exist_ok=True)
    log = paths.root / "logs" / f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}.log"
    with captured(log, settings.verbose) as console:
        console.say(f"full log: {log}")
        started = time.monotonic()
        arguments = pipeline_arguments(settings, paths)
        if settings.data is None:
            console.say(
                f"{'embedded data':<14} {time.monotonic() - started:6.1f} s  {settings.samples} clips"
            )
        prepare_tracking(paths)
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(paths.pipeline_root),
            enable_caching=True,
            cache_root=str(paths.cache),
        )
        paths.cache.mkdir(parents=True, exist_ok=True)
        before = set(paths.pipeline_root.iterdir())
        try:
            with warnings.catch_warnings():
                # The cluster image name has no "python" in it; kfp.local warns about that for every step.
                warnings.filterwarnings("ignore", message=".*non-Python base image.*")
                build_pipeline()(**arguments)
        except RuntimeError as err:
            failed = _failed_task(str(err))
            report = _failure_report(paths, before, failed)
            _record_failed_step(paths, before, failed, report)
            cause = _last_error(log)
            raise PipelineRunError(
                f"{cause or f'step {failed!r} failed'} (log: {log})", task=failed, report=report
            ) from err
    (run_dir,) = sorted(set(paths.pipeline_root.iterdir()) - before - {paths.cache})
    ran = dag_sorted(_task_names(run_dir))
    summary = json.loads((run_dir / "summarize" / "summary").read_text())
    summary["run_dir"] = str(run_dir)
    return paths, StepRecord(ran=ran, cached=dag_sorted(sorted(set(console.reused))), log=log), summary


def _task_names(run_dir: Path) -> list[str]:
    """Tasks that executed in this run: their output folders (ParallelFor iterations nest one level down)."""
    names = []
    for entry in run_dir.iterdir():
        if entry.is_dir() and entry.name.startswith("for-loop-"):
            names += [p.name for p in entry.iterdir() if p.is_dir()]
        elif entry.is_dir():
            names.append(entry.name)
    return names


def _last_error(log: Path) -> str | None:
    """The last exception line a step printed ("EvaluationError: benchmark ... has no samples"), if any."""
    # torch.distributed prefixes a rank's traceback lines with "[rank0]: "
    lines = [
        re.sub(r"^\[rank\d+\]:\s*", "", line.strip()) for line in log.read_text(errors="replace").splitlines()
    ]
    errors = [line for line in lines if re.match(r"^([\w.]+\.)?\w+(Error|Exception): ", line)]
    return re.sub(r"^(\w+\.)+", "", errors[-1]) if errors else None  # without the module path


def _failed_task(message: str) -> str | None:
    """kfp.local names the inner task that failed: "... Inner task failed: 'validate' inside ..."."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", message)
    match = re.search(r"Inner task failed: '([^']+)'", plain) or re.search(r"Task '([^']+)' finished", plain)
    return match.group(1) if match else None


def _record_failed_step(paths: WorkPaths, before: set[Path], task: str | None, report: Path | None) -> None:
    """Add the failed step's name and report to the exit handler's MLflow run.

    Inside the pipeline the exit handler only learns that the run failed; kfp.local names the step afterwards.
    """
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=paths.tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENTS["pipeline"])
    for run_dir in set(paths.pipeline_root.iterdir()) - before - {paths.cache}:
        runs = client.search_runs([experiment.experiment_id], f"tags.`pipeline.run` = '{run_dir.name}'")
        for run in runs:
            client.set_tag(run.info.run_id, "pipeline.failed_step", task or "unknown")
            if report is not None:
                client.log_artifact(run.info.run_id, str(report), "failure")


def _failure_report(paths: WorkPaths, before: set[Path], task: str | None) -> Path | None:
    """The HTML report a failed step left behind (validation writes its report before it stops the run)."""
    if task is None:
        return None
    for run_dir in sorted(set(paths.pipeline_root.iterdir()) - before, key=lambda p: p.stat().st_mtime):
        # the step's main page (its links work there), else its `report` HTML artifact, else any page it wrote
        pages = sorted((run_dir / task).glob("**/*.html"))
        main = [p for p in pages if p.name in ("validation.html", "report.html")]
        for candidate in [*main, run_dir / task / "report", *pages]:
            if candidate.is_file():
                return candidate
    return None


@dataclass
class ServedModel:
    """A tritonserver this project started in the background on the published repository."""

    pid: int
    http: str
    grpc: str
    metrics: str
    log: Path


class ServeError(RuntimeError):
    """The local tritonserver did not come up; the message carries its log tail."""


def stop_server(paths: WorkPaths, timeout_s: float = 60.0) -> bool:
    """Stop the server a previous local run left running (only if its pid file names our own serve process)."""
    import os
    import signal

    pid_file = paths.triton / "server.pid"
    if not pid_file.is_file():
        return False
    pid = int(pid_file.read_text().split()[0])
    pid_file.unlink()
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    if "serve" not in cmdline or str(paths.serving_repository) not in cmdline:
        return False  # the pid was reused by an unrelated process
    os.kill(pid, signal.SIGTERM)  # `alchemist serve` turns SIGTERM into a clean shutdown
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    return True


def _alive(pid: int) -> bool:
    """True while `pid` runs; reaps it when it is our own exited child (a zombie still has a /proc entry)."""
    import os

    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:  # started by an earlier command: not ours to reap
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def reserve_ports(paths: WorkPaths, settings: LocalSettings) -> tuple[int, int, int]:
    """The server's ports, checked before the pipeline runs so a busy port fails in seconds, not at the end.

    A server an earlier local run left behind is stopped first (its ports are ours to reuse); 0 picks a free one.
    """
    from serving.launcher import ServerStartError, check_ports_free, free_port

    stop_server(paths)
    http, grpc, metrics = (
        p or free_port() for p in (settings.http_port, settings.grpc_port, settings.metrics_port)
    )
    try:
        check_ports_free("127.0.0.1", {"HTTP": http, "gRPC": grpc, "metrics": metrics})
    except ServerStartError as err:
        raise ServeError(str(err)) from err
    return http, grpc, metrics


def start_server(
    paths: WorkPaths, ports: tuple[int, int, int], model_name: str, timeout_s: float = 300.0
) -> ServedModel:
    """Start `alchemist serve` on the published repository as a background process that outlives this command.

    Ready means: the process still runs, the model answers ready, and the server serves our export id.
    """
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    from serving.launcher import identity_problem

    paths.triton.mkdir(parents=True, exist_ok=True)
    log = paths.triton / "serve.log"
    command = [
        sys.executable, "-c", "from pipelines.cli import app; app()", "serve",
        "--repository", str(paths.serving_repository), "--work", str(paths.triton / "server"),
        "--http-port", str(ports[0]), "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2]),
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    (paths.triton / "server.pid").write_text(f"{process.pid}\n")
    host = "127.0.0.1"
    served = ServedModel(process.pid, f"{host}:{ports[0]}", f"{host}:{ports[1]}", f"{host}:{ports[2]}", log)
    ready = f"http://{served.http}/v2/models/{model_name}/ready"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            (paths.triton / "server.pid").unlink(missing_ok=True)
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise ServeError(
                f"tritonserver exited with code {process.returncode}: {' / '.join(tail)} (log {log})"
            )
        try:
            with urllib.request.urlopen(ready, timeout=2) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    else:
        stop_server(paths)
        raise ServeError(f"model {model_name} not ready on {served.http} after {timeout_s:.0f} s; log: {log}")
    problem = identity_problem(served.http, paths.serving_repository)
    if problem or process.poll() is not None:
        stop_server(paths)
        raise ServeError(problem or f"tritonserver exited right after start-up; log: {log}")
    return served


@dataclass
class LocalResult:
    """Everything `alchemist pipeline run --local` reports at the end."""

    paths: WorkPaths
    steps: StepRecord
    summary: dict
    seconds: float
    served: ServedModel | None = None
    example: list[str] = field(default_factory=list)  # an `alchemist generate` command that works
    example_output: Path | None = None
    reference: ReferenceCheck | None = None


def example_request(paths: WorkPaths, served: ServedModel) -> tuple[str, dict[str, list[Path]], Path]:
    """A prompt in the demo world's words (bird: the upper entity, ball: the lower) with two cast photos."""
    from components.embedded.personalization import LANE_WORDS

    upper, lower = LANE_WORDS
    photos = paths.embedded / "ground_truth" / "identities"
    prompt = f"the {upper} moves right and the {lower} moves left across the grass"
    return (
        prompt,
        {upper: [photos / "astronaut.png"], lower: [photos / "coffee.png"]},
        paths.root / "generated.mp4",
    )


def try_generate(paths: WorkPaths, served: ServedModel) -> tuple[list[str], Path]:
    """Ask the served model for one video, as a user would; returns the equivalent CLI command and the file."""
    from serving.client import AlchemistClient

    prompt, references, out = example_request(paths, served)
    with AlchemistClient(served.http, timeout_s=600) as client:
        client.generate_video(prompt, references=references, seed=0).save(out)
    refs = [f"--ref {word}={path}" for word, images in references.items() for path in images]
    return [
        f"{console_script('alchemist')} generate",
        f"--server {served.http}",
        f'--prompt "{prompt}"',
        *refs,
        f"--out {out}",
    ], out


def check_references(paths: WorkPaths, summary: dict, settings: LocalSettings) -> ReferenceCheck:
    """Does a reference steer the trained model? Own vs swapped references, scored on the embedded truth."""
    from transformers.utils import logging as transformers_logging

    from components.embedded.personalization import LANE_WORDS
    from components.evaluate.reference_check import held_out_samples, reference_check
    from components.train.trainer import load_trained
    from model.generator import Generator

    started = time.monotonic()
    transformers_logging.disable_progress_bar()  # the step's one line is the whole report
    generator = Generator(load_trained(Path(summary["model"]), use_ema=True), device="cpu")
    video = generator.model.config.video
    samples = held_out_samples(paths.embedded, Path(summary["dataset"]), video.frames, video.height, limit=8)
    check = reference_check(
        generator, samples, LANE_WORDS, paths.root / "reference_check", steps=settings.eval_steps
    )
    print(
        f"  {'reference check':<14} {time.monotonic() - started:6.1f} s  {check.correct:.3f} vs swapped {check.swapped:.3f}"
    )
    return check


def console_script(name: str) -> str:
    """This environment's console script `name` (relative to the current folder when inside it), so a printed
    command works without activating the environment."""
    import sys

    path = Path(sys.executable).parent / name
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def run_local(settings: LocalSettings) -> LocalResult:
    """The whole embedded run: pipeline, then the published model served by a local tritonserver."""
    start = time.monotonic()
    ports = reserve_ports(WorkPaths(settings.work), settings) if settings.serve else None
    paths, steps, summary = run_pipeline(settings)
    result = LocalResult(paths, steps, summary, time.monotonic() - start)
    if settings.data is None:
        result.reference = check_references(paths, summary, settings)
    published = paths.serving_repository
    if ports is not None and published.is_dir() and any(published.iterdir()):
        model_name = next(p.name for p in sorted(published.iterdir()) if (p / "config.pbtxt").is_file())
        result.served = start_server(paths, ports, model_name)
        result.example, result.example_output = try_generate(paths, result.served)
    result.seconds = time.monotonic() - start
    return result
