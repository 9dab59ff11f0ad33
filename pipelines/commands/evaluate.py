"""`alchemist evaluate`: MSRVTT-Personalization scores (and toy-world scores) of a checkpoint or of videos."""

from __future__ import annotations

from pathlib import Path

import typer


def evaluate_command(
    benchmark: Path = typer.Option(
        ...,
        "--dataset",
        "--benchmark",
        help="Mined dataset folder (its test split) or a benchmark in the published MSRVTT-Personalization layout.",
    ),
    out: Path = typer.Option(
        Path("work/evaluation"), help="Output folder for generated videos and the report."
    ),
    assignments: list[str] = typer.Option(
        [],
        "--set",
        help="Override the checkpoint's encoder locations, flow.* or video.*, e.g. --set flow.shift=3.",
    ),
    text_encoder: str | None = typer.Option(None, "--text-encoder", help="Text encoder folder or s3:// URI."),
    image_encoder: str | None = typer.Option(
        None, "--image-encoder", help="Image encoder folder or s3:// URI."
    ),
    vae: str | None = typer.Option(None, "--vae", help="VAE folder or s3:// URI."),
    checkpoint: Path = typer.Option(
        None, help="Model checkpoint folder to generate from (Generator.from_pretrained)."
    ),
    videos: Path = typer.Option(None, help="Already generated videos: <videos>/<mode>/<sample_id>.mp4."),
    layout: str = typer.Option("auto", help="Benchmark layout: auto, published or manifest."),
    split: str = typer.Option("test", help="Manifest split to evaluate (manifest layout)."),
    modes: str = typer.Option(None, help="Comma-separated modes (default: every mode the benchmark has)."),
    limit: int = typer.Option(None, help="At most this many samples per mode."),
    evaluators: Path = typer.Option(
        None, help="YAML/JSON of EvaluatorConfig fields (clip, dino, grounding_dino, sam, ...)."
    ),
    clip: str = typer.Option(None, help="CLIP ViT-L/14 folder or s3:// URI (unset: random-weight CLIP)."),
    dino: str = typer.Option(None, help="DINO ViT-B/16 folder or s3:// URI (unset: random weights)."),
    grounding_dino: str = typer.Option(
        None, help="GroundingDINO folder or s3:// URI (unset: random weights)."
    ),
    sam: str = typer.Option(None, help="SAM folder or s3:// URI (unset: random weights)."),
    arcface: str = typer.Option(
        None, help="Folder or s3:// URI with ArcFace backbone.pth (unset: random weights)."
    ),
    face_detector: str = typer.Option(None, help="'haar' (OpenCV's bundled cascade) or 'yunet:<onnx>'."),
    flow: str = typer.Option(None, help="Dync-D flow backend: 'farneback' or 'raft:<weights>'."),
    num_frames: int = typer.Option(
        None,
        help="Score only the first N frames of each video. Required for the published layout, as the "
        "reference's --num_frames is; the manifest layout scores every frame by default.",
    ),
    fps: float = typer.Option(
        8.0, help="Frame rate of generated videos (written to mp4; Dync-D samples at ~8 fps)."
    ),
    cache_dir: Path = typer.Option(Path("work/cache/evaluate"), help="Embedding cache folder."),
    toy_dataset: Path = typer.Option(
        None, help="Embedded dataset folder whose ground truth adds toy-world scores."
    ),
    steps: int = typer.Option(
        20,
        "--sample-steps",
        help="Sampler steps when generating (as in `pipeline run` and `generate`).",
    ),
    guidance: float = typer.Option(4.0, help="Classifier-free guidance when generating."),
    seed: int = typer.Option(0, help="Generation seed."),
    device: str = typer.Option("cpu", help="Device for generation."),
    max_gifs: int = typer.Option(12, help="Samples shown with GIFs in the HTML report."),
    mlflow_log: bool = typer.Option(
        True, "--mlflow/--no-mlflow", help="Log metrics, tags and the report to MLflow."
    ),
    tracking_uri: str = typer.Option(
        None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///work/mlflow.db)."
    ),
    experiment: str = typer.Option(
        "evaluate", help="MLflow experiment for a new run (only when no training run is known)."
    ),
    run_id: str = typer.Option(
        None,
        help="Log into this MLflow run (default: the run that trained --checkpoint, from its result.json).",
    ),
) -> None:
    """Generate (or read) one video per benchmark sample, score it, write report.json/report.html, log to MLflow."""
    import dataclasses

    import yaml
    from rich.console import Console
    from rich.table import Table

    from components.configuration import (
        CHECKPOINT_FIELDS,
        ModelConfigError,
        configure,
        location_overrides,
        merge_overrides,
        parse_assignments,
    )
    from components.evaluate.benchmark import load_benchmark
    from components.evaluate.evaluators import EvaluatorConfig, EvaluatorSuite
    from components.evaluate.report import ReportContext, log_to_mlflow, report_context, write_report
    from components.evaluate.runner import GenerationConfig, evaluate_model, rank_and_world_size
    from components.train.tracking import tracking_uri as resolve_tracking_uri
    from components.weights import locate
    from model.config import checkpoint_config

    if (checkpoint is None) == (videos is None):
        raise typer.BadParameter(
            "give exactly one of --checkpoint (generate) or --videos (already generated)"
        )
    fields = yaml.safe_load(evaluators.read_text()) if evaluators else {}
    overrides = dict(clip=clip, dino=dino, grounding_dino=grounding_dino, sam=sam, arcface=arcface)
    overrides.update(face_detector=face_detector, flow=flow)
    fields.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(EvaluatorConfig)}
    if set(fields) - known:
        raise typer.BadParameter(
            f"unknown evaluator fields {sorted(set(fields) - known)}; expected {sorted(known)}"
        )
    suite = EvaluatorSuite(EvaluatorConfig(**fields))
    bench = load_benchmark(benchmark, layout, split).select(modes.split(",") if modes else None, limit)
    if bench.layout == "published" and num_frames is None:
        typer.echo(
            f"error: {benchmark} is in the published MSRVTT-Personalization layout, whose protocol scores the "
            "first N frames of each video: pass --num-frames N (the reference's required --num_frames)",
            err=True,
        )
        raise typer.Exit(2)
    uri = resolve_tracking_uri(tracking_uri)
    target = None
    if mlflow_log:
        import mlflow

        mlflow.set_tracking_uri(uri)  # report_context and log_to_mlflow read the current store
        target = existing_run(uri, run_id, checkpoint)  # fail before generating
    generation = GenerationConfig(steps=steps, guidance=guidance, seed=seed, fps=fps, device=device)
    if checkpoint is not None:
        try:
            generation.model_overrides = merge_overrides(
                parse_assignments(assignments),
                location_overrides(text_encoder=text_encoder, image_encoder=image_encoder, vae=vae),
            )
            configure(
                checkpoint_config(locate(str(checkpoint))), generation.model_overrides, CHECKPOINT_FIELDS
            )
        except (ModelConfigError, FileNotFoundError) as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
    evaluation = evaluate_model(
        bench,
        suite,
        videos if videos is not None else out / "generated",
        checkpoint_dir=checkpoint,
        generation=generation,
        cache_dir=cache_dir,
        num_frames=num_frames,
        toy_dataset=toy_dataset,
    )
    if rank_and_world_size()[0] != 0:  # every rank holds the gathered result; rank 0 reports it
        return
    result = evaluation.result
    model = str(checkpoint) if checkpoint is not None else f"videos from {videos}"
    if mlflow_log:
        created = target is None
        run_id = target or new_run(uri, experiment, bench, checkpoint, videos)
        context = report_context(run_id, model)
    else:
        context = ReportContext(model=model)
    write_report(result, out, bench, evaluation.videos, max_gifs=max_gifs, context=context)
    console = Console()
    if result.random_weights:
        console.print(
            f"[bold red]Random-weight evaluators: {', '.join(result.random_weights)}: scores are not quality."
        )
    table = Table(title=f"{bench.name} ({len(result.samples)} samples)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.metrics.items():
        table.add_row(key, f"{value:.4f}")
    console.print(table)
    console.print(f"report: {out / 'report.html'}")
    if mlflow_log:
        log_to_mlflow(result, out, run_id)
        if created:
            mlflow.MlflowClient(uri).set_terminated(run_id)
        console.print(f"MLflow run: {run_id}")


def training_run_id(checkpoint: Path | None) -> str | None:
    """The MLflow run that trained `checkpoint` (its result.json records it), so evaluation logs there."""
    import json

    result = checkpoint / "result.json" if checkpoint is not None else None
    if result is None or not result.is_file():
        return None
    return json.loads(result.read_text()).get("mlflow_run_id") or None


def existing_run(uri: str, run_id: str | None, checkpoint: Path | None) -> str | None:
    """`run_id`, else the checkpoint's training run; checked to exist in the store at `uri`."""
    import mlflow
    from mlflow.exceptions import MlflowException

    target = run_id or training_run_id(checkpoint)
    if target is None:
        return None
    try:
        mlflow.MlflowClient(uri).get_run(target)
    except MlflowException as err:
        source = "--run-id" if run_id else f"{checkpoint}/result.json"
        typer.echo(
            f"error: MLflow run {target} (from {source}) is not in the tracking store {uri}; "
            "pass the training store's --tracking-uri, or --run-id",
            err=True,
        )
        raise typer.Exit(2) from err
    return target


def new_run(uri: str, experiment: str, bench, checkpoint: Path | None, videos: Path | None) -> str:
    """A run of `experiment` for an evaluation no training run owns (videos, or a checkpoint without one)."""
    import mlflow

    from components.train.tracking import run_name, use_experiment

    experiment_id = use_experiment(uri, experiment)
    label = (videos or checkpoint).name
    client = mlflow.MlflowClient(uri)
    run = client.create_run(experiment_id, run_name=run_name(label, "evaluate", bench.name, None))
    params = {"benchmark": str(bench.root), "layout": bench.layout, "checkpoint": str(checkpoint or "")}
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    return run.info.run_id


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
