"""`alchemist pipeline run --local | compile | submit`: the whole pipeline, here or on a Kubeflow cluster."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from components.image import COMPONENT_IMAGE

pipeline_app = typer.Typer(
    help="Run the whole pipeline locally (kfp.local) or compile/submit it to Kubeflow."
)


def register(app: typer.Typer) -> None:
    app.add_typer(pipeline_app, name="pipeline")


def _parse_params(params: list[str]) -> dict[str, object]:
    """KEY=VALUE pairs; a VALUE that parses as JSON (numbers, dicts, true/false) is passed as such."""
    parsed: dict[str, object] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--param {item!r}: expected KEY=VALUE")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


@pipeline_app.command("run")
def run(
    local: bool = typer.Option(
        False,
        "--local",
        help="Required: run every step on this machine with kfp.local (for a cluster: compile, submit).",
    ),
    work: Path = typer.Option(
        Path("work"), "--work", help="Working folder for data, MLflow, DVC, step outputs, logs and Triton."
    ),
    videos: Path = typer.Option(
        None, "--videos", help="Folder of videos to mine.", show_default="the generated embedded dataset"
    ),
    captions: Path = typer.Option(
        None, "--captions", help="Captions file for --videos.", show_default="<videos>/captions.jsonl"
    ),
    samples: int = typer.Option(
        96, help="Clips in the embedded dataset (generated once under <work>/embedded)."
    ),
    shards: int = typer.Option(2, help="Mining shards run in parallel (dsl.ParallelFor)."),
    preset: str = typer.Option(
        "small", help="Model size preset: small on CPU (tiny: plumbing, makes noise)."
    ),
    stage1_steps: int = typer.Option(60, help="Optimizer steps of training stage 1 (text cross-attention)."),
    stage2_steps: int = typer.Option(300, help="Optimizer steps of training stage 2 (personalization)."),
    lr: float = typer.Option(7e-4, "--lr", help="Peak learning rate of both training stages (AdamW)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Training micro-batch size."),
    warmup_steps: int = typer.Option(30, "--warmup-steps", help="Linear warmup steps of each stage."),
    sample_steps: int = typer.Option(
        10, "--sample-steps", help="Sampler steps per generated evaluation video."
    ),
    policy: str = typer.Option(
        "demo", "--policy", help="Promotion policy: a bundled name (demo, default) or a YAML file."
    ),
    serve: bool = typer.Option(
        True, "--serve/--no-serve", help="Serve the promoted model with a local Triton."
    ),
    http_port: int = typer.Option(8000, help="Triton HTTP port (0: pick a free one)."),
    grpc_port: int = typer.Option(8001, help="Triton gRPC port (0: pick a free one)."),
    metrics_port: int = typer.Option(8002, help="Triton metrics port (0: pick a free one)."),
    verbose: bool = typer.Option(
        False, "--verbose", help="Print kfp.local's raw logs (always in <work>/logs/)."
    ),
    param: list[str] = typer.Option([], help="Any other pipeline parameter as KEY=VALUE (repeatable)."),
) -> None:
    """Mine, version, validate, train, evaluate, export and promote, then serve the champion locally."""
    from rich.console import Console

    from pipelines.local import LocalSettings, PipelineRunError, ServeError, run_local

    console = Console(soft_wrap=True)  # paths and commands stay on one line, ready to copy
    if not local:
        console.print("Only --local runs here; for a cluster use `alchemist pipeline compile` and `submit`.")
        raise typer.Exit(2)
    try:
        settings = LocalSettings(
            work=work,
            data=videos,
            captions=captions,
            samples=samples,
            shards=shards,
            preset=preset,
            stage1_steps=stage1_steps,
            stage2_steps=stage2_steps,
            learning_rate=lr,
            batch_size=batch_size,
            warmup_steps=warmup_steps,
            eval_steps=sample_steps,
            gate_policy=policy,
            serve=serve,
            http_port=http_port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            verbose=verbose,
            extra=_parse_params(param),
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    try:
        result = run_local(settings)
    except PipelineRunError as err:
        console.print(f"[bold red]Pipeline stopped at step {err.task!r}.[/bold red] {err}")
        if err.report is not None:
            console.print(f"  report: {err.report}")
        console.print(
            f"  failure recorded in MLflow: mlflow ui --backend-store-uri sqlite:///{work.resolve()}/mlflow.db"
        )
        raise typer.Exit(1) from err
    except ServeError as err:
        console.print(f"[bold red]error:[/bold red] serving: {err}")
        raise typer.Exit(1) from err
    _print_result(console, result)


def _print_result(console, result) -> None:
    from pipelines.expectation import EXPECTATION
    from pipelines.local import console_script

    paths, summary = result.paths, result.summary
    console.print(f"\n[bold green]Pipeline finished[/bold green] in {result.seconds / 60:.1f} min")
    console.print(f"  steps run:          {', '.join(result.steps.ran)}")
    console.print(
        f"  steps reused:       {', '.join(result.steps.cached) or 'none'} (unchanged inputs and code)"
    )
    console.print(f"  full log:           {result.steps.log}")
    console.print(f"  data revision:      {summary['data_rev']} (DVC remote {summary['dvc_remote']})")
    console.print(f"  validation report:  {summary['validation_report']}")
    console.print(f"  evaluation report:  {summary['evaluation_report']}")
    console.print(
        f"  MLflow:             {console_script('mlflow')} ui --backend-store-uri {paths.tracking_uri}"
    )
    console.print(f"                      candidate run {summary['candidate_run']}")
    console.print(
        f"  gate decision:      [bold]{summary['decision'].upper()}[/bold] for model version "
        f"{summary['model_version']} ({summary['gate_summary']})"
    )
    if result.reference is not None:
        check = result.reference
        console.print(f"  {check.line()}")
        console.print(f"                      strip {check.strip}, animated {check.gif}")
        console.print(
            "                      (each row: references | generated with them | another clip's references | generated)"
        )
    console.print(f"  {EXPECTATION}")
    if result.served is not None:
        served = result.served
        console.print(
            f"  served model:       http://{served.http} (gRPC {served.grpc}, metrics {served.metrics})"
        )
        console.print(f"                      log {served.log}; stop: kill {served.pid}")
        console.print(f"  try it:             {' '.join(result.example)}")
        console.print(f"                      (this request just produced {result.example_output})")
    elif summary["decision"] != "pass":
        console.print("  served model:       unchanged: the gate did not promote this model")


@pipeline_app.command("compile")
def compile_(
    out: Path = typer.Option(Path("work/video_alchemist.yaml"), help="Where to write the KFP IR YAML."),
    image: str = typer.Option(
        None,
        help="Component image (built from infra/Dockerfile, target component).",
        show_default=COMPONENT_IMAGE,
    ),
    gpus: int = typer.Option(8, help="GPUs per training/evaluation step."),
    accelerator: str = typer.Option("nvidia.com/gpu", help="Accelerator resource name."),
    node_selector: list[str] = typer.Option(
        [], help="LABEL=VALUE of the GPU node pool (repeatable; default nvidia.com/gpu.product=H100)."
    ),
    shm_size: str = typer.Option("64Gi", help="Size of the in-memory /dev/shm volume of GPU steps."),
    train_nodes: int = typer.Option(1, help="Nodes per training stage; >1 runs each stage as a PyTorchJob."),
) -> None:
    """Compile the pipeline for a Kubeflow cluster (GPU node pool, S3 and MLflow secrets)."""
    from pipelines.cluster import ClusterOptions, GpuPool, compile_pipeline

    pool = GpuPool(accelerator=accelerator, gpus=gpus, shm_size=shm_size)
    if node_selector:
        pool.node_selector = {k: v for k, _, v in (s.partition("=") for s in node_selector)}
    options = ClusterOptions(gpu_pool=pool, train_nodes=train_nodes, **({"image": image} if image else {}))
    typer.echo(f"wrote {compile_pipeline(out, options)}")


@pipeline_app.command("submit")
def submit(
    host: str = typer.Option(
        ..., help="Kubeflow Pipelines API endpoint, e.g. http://ml-pipeline-ui.kubeflow:80."
    ),
    experiment: str = typer.Option(..., help="KFP experiment to file the run under."),
    package: Path = typer.Option(
        Path("work/video_alchemist.yaml"), help="Compiled pipeline (from `alchemist pipeline compile`)."
    ),
    namespace: str = typer.Option("alchemist", help="Kubernetes namespace (KFP multi-user profile)."),
    service_account: str = typer.Option("alchemist-pipeline", help="Service account the run's pods use."),
    run_name: str = typer.Option(None, help="Name of the run in the KFP UI."),
    param: list[str] = typer.Option(
        [], help="Pipeline parameter as KEY=VALUE (repeatable); `data` is required."
    ),
) -> None:
    """Submit a compiled pipeline to Kubeflow Pipelines with kfp.Client."""
    from pipelines.cluster import ClusterOptions
    from pipelines.cluster import submit as submit_run

    if not package.is_file():
        raise typer.BadParameter(
            f"--package {package} does not exist; run `alchemist pipeline compile` first"
        )
    arguments = _parse_params(param)
    if "data" not in arguments:
        raise typer.BadParameter("give the data location: --param data=s3://bucket/videos")
    # A pod's local folder disappears with the pod: what must outlive the run goes to S3.
    for key in ("dvc_remote", "serving_repository"):
        if not str(arguments.get(key, "")).startswith("s3://"):
            raise typer.BadParameter(
                f"--param {key}=s3://... is required on a cluster (got {arguments.get(key)!r})"
            )
    options = ClusterOptions(namespace=namespace, service_account=service_account)
    run_id = submit_run(package, host, experiment, arguments, options, run_name=run_name)
    typer.echo(f"submitted run {run_id} to {host} (experiment {experiment})")
