"""`alchemist model import-wan`: a published Wan2.1 text-to-video model as a stage-1 Video Alchemist."""

from __future__ import annotations

from pathlib import Path

import typer

model_app = typer.Typer(help="Bring pretrained backbones into the platform.", no_args_is_help=True)


@model_app.command("import-wan")
def import_wan_command(
    transformer: str = typer.Option(
        ...,
        "--transformer",
        help="Wan2.1 T2V transformer folder or s3:// URI: diffusers `transformer/` (config.json + sharded "
        "safetensors) or the original Wan2.1 repository's folder.",
    ),
    out: Path = typer.Option(..., "--out", help="Where to write the model (VideoAlchemist.save_pretrained)."),
    text_encoder: str | None = typer.Option(
        None, "--text-encoder", help="UMT5-XXL folder. Default: text_encoder/ beside the transformer."
    ),
    tokenizer: str | None = typer.Option(
        None, "--tokenizer", help="UMT5 tokenizer folder. Default: tokenizer/ beside the transformer."
    ),
    vae: str | None = typer.Option(None, "--vae", help="AutoencoderKLWan folder. Default: vae/ beside it."),
    image_encoder: str | None = typer.Option(
        None, "--image-encoder", help="DINOv2 folder for references. Default: a small random one (tagged)."
    ),
) -> None:
    """Write a checkpoint that computes exactly Wan's function until stage 2 trains personalization."""
    from components.weights import locate
    from model.wan import WanImportError, import_wan

    try:
        result = import_wan(locate(transformer), out, text_encoder, tokenizer, vae, image_encoder)
    except (WanImportError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    dit = result.config.dit
    typer.echo(
        f"imported {result.config.name}: width {dit.hidden_size}, {dit.depth} blocks, {dit.num_heads} heads, "
        f"{result.dit_parameters / 1e9:.2f} B DiT parameters ({result.personalization_parameters / 1e9:.2f} B "
        f"personalization, starting at zero output)"
    )
    typer.echo(f"wrote {result.out}")
    for field in result.unset:
        typer.echo(
            f"fill in: {field} in {result.out / 'config.json'}, or pass it to train (--set {field}=DIR)"
        )
    if result.config.image.path is None:
        typer.echo(
            "references use a random DINOv2 (tagged random in MLflow): pass --image-encoder for real ones"
        )
    typer.echo(f"next: alchemist train --init-from {result.out} --dataset DIR --trainable personalization")


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
