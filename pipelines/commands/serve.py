"""`alchemist serve` (a local tritonserver on a model repository) and `alchemist generate` (its client)."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.expectation import EXPECTATION


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("generate")(generate)


def serve(
    repository: Path = typer.Option(
        ..., "--repository", "-r", help="Triton model repository (from the export step)."
    ),
    http_port: int = typer.Option(8000, help="HTTP/REST port (0: pick a free one)."),
    grpc_port: int = typer.Option(8001, help="gRPC port (0: pick a free one)."),
    metrics_port: int = typer.Option(8002, help="Prometheus metrics port (0: pick a free one)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 for every interface)."),
    work: Path = typer.Option(
        Path("work/server"),
        "--work",
        help="Folder for the assembled backend directory and tritonserver.log (outside --repository).",
    ),
    startup_timeout: float = typer.Option(
        300.0, help="Seconds to wait for the server and models to be ready."
    ),
    log_verbose: int = typer.Option(0, help="tritonserver --log-verbose level."),
) -> None:
    """Start the tritonserver binary from the nvidia-pytriton wheel; Ctrl-C or SIGTERM stops it cleanly."""
    import signal

    from rich.console import Console

    from serving.launcher import LocalTritonServer, ServerConfig, ServerStartError

    console = Console()
    config = ServerConfig(
        repository=repository,
        http_port=http_port or None,
        grpc_port=grpc_port or None,
        metrics_port=metrics_port or None,
        host=host,
        work_dir=work,
        startup_timeout_s=startup_timeout,
        log_verbose=log_verbose,
    )
    server = LocalTritonServer(config)

    def on_sigterm(signum, frame):  # turn SIGTERM into the same clean path as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with console.status(f"starting tritonserver on {repository} ..."):
            server.start()
    except ServerStartError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"[green]ready[/green]  HTTP  {server.http_url}")
    console.print(f"       gRPC  {server.grpc_url}")
    console.print(f"       metrics {server.metrics_url}")
    console.print(f"       log   {server.log_path}   (Ctrl-C to stop)")
    try:
        code = server.wait()
        console.print(f"[red]tritonserver exited on its own with code {code}[/red]\n{server.log_tail()}")
        server.stop()
        raise typer.Exit(code or 1)
    except KeyboardInterrupt:
        console.print("stopping: finishing in-flight requests and unloading models ...")
        code = server.stop()
        console.print(f"stopped (exit code {code})")


def _parse_refs(refs: list[str]) -> dict[str, list[Path]]:
    references: dict[str, list[Path]] = {}
    for ref in refs:
        word, sep, path = ref.partition("=")
        if not sep or not word.strip() or not path:
            raise typer.BadParameter(f"--ref {ref!r}; expected WORD=IMAGE_PATH, e.g. dog=dog.jpg")
        references.setdefault(word.strip(), []).append(Path(path))
    return references


def generate(
    prompt: str = typer.Option(..., help="Text prompt; every --ref word must occur in it."),
    server: str = typer.Option("localhost:8000", help="Server address host:port (HTTP 8000 or gRPC 8001)."),
    protocol: str = typer.Option("http", help="'http' or 'grpc'."),
    model_name: str = typer.Option("video_alchemist", "--model-name", help="Model name in the repository."),
    ref: list[str] = typer.Option(
        [], "--ref", help="WORD=IMAGE_PATH; repeat, also for several images of a word."
    ),
    background: Path | None = typer.Option(None, help="Background image."),
    frames: int | None = typer.Option(None, help="Frames.", show_default="the model's"),
    height: int | None = typer.Option(None, help="Height in pixels.", show_default="the model's"),
    width: int | None = typer.Option(None, help="Width in pixels.", show_default="the model's"),
    sample_steps: int | None = typer.Option(
        None, "--sample-steps", help="Sampler steps.", show_default="the server's"
    ),
    guidance: float | None = typer.Option(
        None, help="Classifier-free guidance scale.", show_default="the server's"
    ),
    seed: int = typer.Option(0, help="Noise seed; same seed and inputs give the same video."),
    step_cache: float | None = typer.Option(
        None,
        "--step-cache",
        help="Skip sampler steps whose input moved less than this (relative L1): faster, no longer the exact "
        "video. How far the input moves per step depends on the checkpoint: benchmarks/README.md, step cache.",
        show_default="off",
    ),
    out: Path = typer.Option(Path("video.mp4"), help="Where to write the MP4."),
    timeout: float = typer.Option(600.0, help="Seconds to wait for one answer."),
    retries: int = typer.Option(3, help="Retries while the server answers 503/unavailable."),
) -> None:
    """Generate one personalized video on a running server and save it as MP4."""
    from serving.client import AlchemistClient, ClientError

    references = _parse_refs(ref)
    try:
        with AlchemistClient(server, protocol, model_name, timeout_s=timeout, retries=retries) as client:
            result = client.generate_video(
                prompt,
                references=references,
                background=background,
                frames=frames,
                height=height,
                width=width,
                steps=sample_steps,
                guidance=guidance,
                seed=seed,
                step_cache=step_cache,
            )
    except (ClientError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    result.save(out)
    t, h, w, _ = result.video.shape
    typer.echo(f"wrote {out} ({t} frames, {w}x{h}, {len(result.mp4)} bytes) in {result.latency_s:.2f} s")
    typer.echo(EXPECTATION)
