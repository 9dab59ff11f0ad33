"""`alchemist mine` (captioned videos -> mined dataset) and `alchemist make-embedded-dataset`."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("mine")(mine)
    app.command("make-embedded-dataset")(make_embedded_dataset)


def mine(
    videos: str = typer.Option(
        ..., "--videos", help="Folder of videos, or an s3://bucket/prefix to download."
    ),
    captions: str = typer.Option(
        ...,
        "--captions",
        help="Captions file (path or s3:// URI): JSONL or CSV with `file, caption` (file relative to "
        "--videos), "
        "or an MSR-VTT annotation JSON (`videos` + `sentences`).",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Dataset folder to write (manifest.parquet, rejects.parquet, "
        "media/, dataset.json); finished shards in it are reused on a re-run.",
    ),
    workers: int = typer.Option(2, "--workers", help="Parallel worker processes (1 runs in this process)."),
    shard_size: int = typer.Option(
        16, "--shard-size", help="Samples per shard (the unit of re-run skipping)."
    ),
    entities: str = typer.Option(
        "rules",
        "--entities",
        help="Entity-word backend: rules (offline lexicon), llm-local "
        "(transformers causal LM from --llm-model-dir), llm-http (OpenAI-compatible endpoint at --llm-url).",
    ),
    llm_model_dir: Path | None = typer.Option(None, "--llm-model-dir", help="Local causal LM folder."),
    llm_url: str | None = typer.Option(
        None, "--llm-url", help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1 (a vLLM server)."
    ),
    llm_model: str = typer.Option("default", "--llm-model", help="Model name sent to the endpoint."),
    llm_attempts: int = typer.Option(3, "--llm-attempts", help="Tries per caption before rejecting it."),
    backend: str = typer.Option(
        "motion",
        "--backend",
        help="Segmentation backend: motion (offline, static camera), masks "
        "(existing masks in --masks-dir), grounded-sam (GroundingDINO + SAM from --grounding-dir/--sam-dir).",
    ),
    masks_dir: Path | None = typer.Option(
        None, "--masks-dir", help="Existing masks: <dir>/<video stem>/<word>/<frame:05d>.png."
    ),
    grounding_dir: Path | None = typer.Option(None, "--grounding-dir", help="GroundingDINO model folder."),
    sam_dir: Path | None = typer.Option(None, "--sam-dir", help="SAM model folder."),
    box_threshold: float = typer.Option(0.3, "--box-threshold", help="GroundingDINO box score threshold."),
    mask_score_threshold: float = typer.Option(
        0.5, "--mask-score-threshold", help="Lowest SAM predicted IoU."
    ),
    motion_threshold: float = typer.Option(
        20.0,
        "--motion-threshold",
        help="Motion backend: colour difference (0-255) from the background model that counts as foreground.",
    ),
    min_area: float = typer.Option(0.003, "--min-area", help="Smallest mask, as a fraction of the frame."),
    max_area: float = typer.Option(0.9, "--max-area", help="Largest mask, as a fraction of the frame."),
    clip_frames: int = typer.Option(16, "--clip-frames", help="Frames in the target clip."),
    frame_stride: int = typer.Option(1, "--frame-stride", help="Take every n-th source frame for the clip."),
    max_side: int = typer.Option(512, "--max-side", help="Resize frames so the longer side is at most this."),
    min_side: int = typer.Option(
        16, "--min-side", help="Reject videos whose mined shorter side is below this."
    ),
    max_aspect: float = typer.Option(
        4.0, "--max-aspect", help="Reject videos whose long side exceeds the short one this many times."
    ),
    references: int = typer.Option(3, "--references", help="Reference crops per entity (from other frames)."),
    inpaint: str = typer.Option(
        "temporal",
        "--inpaint",
        help="Background fill: temporal (other frames first, then OpenCV), opencv (cv2.inpaint only) or "
        "diffusers (other frames first, then the inpainting model in --inpaint-model-dir).",
    ),
    inpaint_model_dir: str | None = typer.Option(
        None, "--inpaint-model-dir", help="diffusers inpainting pipeline folder or s3:// URI."
    ),
    inpaint_resolution: int = typer.Option(512, "--inpaint-resolution", help="Size the model inpaints at."),
    inpaint_steps: int = typer.Option(25, "--inpaint-steps", help="Denoising steps of the inpainting model."),
    on_missing_entity: str = typer.Option(
        "reject",
        "--on-missing-entity",
        help="An entity not found: reject the sample, or drop the entity and keep the sample.",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Mine entity words, masks, references and backgrounds from captioned videos into a dataset folder."""
    from components.mine import MinerConfig, mine_dataset

    def optional(path: Path | None) -> str | None:
        return None if path is None else str(path)

    try:
        config = MinerConfig(
            entities=entities, llm_model_dir=optional(llm_model_dir), llm_url=llm_url, llm_model=llm_model,
            llm_attempts=llm_attempts, segmenter=backend, masks_dir=optional(masks_dir),
            grounding_dir=optional(grounding_dir), sam_dir=optional(sam_dir), box_threshold=box_threshold,
            mask_score_threshold=mask_score_threshold,
            motion_threshold=motion_threshold, min_area=min_area, max_area=max_area, clip_frames=clip_frames,
            frame_stride=frame_stride, max_side=max_side, min_side=min_side, max_aspect=max_aspect,
            references_per_entity=references, inpaint=inpaint,
            inpaint_model_dir=inpaint_model_dir, inpaint_resolution=inpaint_resolution,
            inpaint_steps=inpaint_steps,
            on_missing_entity=on_missing_entity, shard_size=shard_size, workers=workers,
        )  # fmt: skip
        summary = mine_dataset(videos, captions, str(out), config, progress=not quiet)
    except (ValueError, OSError, RuntimeError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo(
        f"{summary.samples} samples, {summary.rejected} rejected ({summary.shards} shards, "
        f"{summary.shards_skipped} reused) in {summary.seconds:.1f}s\n"
        f"  manifest {summary.manifest_path}\n  rejects {summary.rejects_path}\n  config {summary.dataset_json}"
    )


def make_embedded_dataset(
    out: Path = typer.Option(..., "--out", help="Folder for videos/, captions.jsonl and ground_truth/."),
    samples: int = typer.Option(24, "--samples", help="Number of clips."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same dataset."),
    frames: int = typer.Option(24, "--frames", help="Frames per clip."),
    size: int = typer.Option(64, "--size", help="Frame height and width in pixels (even)."),
    fps: float = typer.Option(8.0, "--fps", help="Frame rate written into the videos."),
) -> None:
    """Generate the embedded dataset: clips composited from scikit-image photos, with exact ground truth."""
    from components.embedded import EmbeddedConfig, generate_embedded_dataset

    try:
        config = EmbeddedConfig(num_frames=frames, height=size, width=size, fps=fps)
        dataset = generate_embedded_dataset(out, samples=samples, seed=seed, config=config)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo(
        f"{dataset.num_samples} clips in {dataset.videos}\n  captions {dataset.captions}\n"
        f"  ground truth {dataset.ground_truth}\n"
        f"mine it with: alchemist mine --videos {dataset.videos} --captions {dataset.captions} --out DIR"
    )
