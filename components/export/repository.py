"""Checkpoint -> Triton model repository (Python backend), self-contained and versioned.

Layout written for model `video_alchemist`, version 3:

    <repository>/video_alchemist/config.pbtxt      inputs/outputs, batching, instance groups, limits
    <repository>/video_alchemist/README.md         model card
    <repository>/video_alchemist/3/model.py        serving/triton_model.py
    <repository>/video_alchemist/3/checkpoint/     config.json + model.safetensors
    <repository>/video_alchemist/3/encoders/       pretrained encoder folders the checkpoint loads from
    <repository>/video_alchemist/3/encoders.json   recorded encoder location -> folder under 3/
    <repository>/video_alchemist/3/src/model/      snapshot of the model package
    <repository>/video_alchemist/3/src/serving/    snapshot of the serving protocol + media helpers
    <repository>/video_alchemist/3/export.json     provenance: source, hashes, limits, time

Copying the code and the encoders makes a version independent of what is installed or reachable
where it is served: a later change to `model/` cannot break, or silently change, a model exported
before it, and a Triton pod needs no S3 access to start.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import model as model_package
import serving as serving_package
from components.storage import file_sha256, is_s3, materialize
from serving import protocol as P
from serving.launcher import EXPORT_ID_KEY

InstanceKind = Literal["auto", "cpu", "gpu"]
SERVING_FILES = ("__init__.py", "protocol.py", "media.py")
CHECKPOINT_FILES = ("config.json", "model.safetensors")
# Config fields that name a pretrained folder (local path or s3:// URI) the model loads at start-up.
ENCODER_FIELDS = (("text", "path"), ("text", "tokenizer_path"), ("image", "path"), ("vae", "path"))
BUILTIN_PREFIX = "builtin:"  # shipped inside an installed package, e.g. builtin:minilm
CPU_PRESETS = ("tiny", "small")  # sized for tests and the CPU demo: the model card says what they can make


class ExportError(ValueError):
    """The checkpoint or the export options cannot make a servable repository."""


@dataclass
class ExportResult:
    repository_dir: Path
    model_name: str
    version: int
    model_dir: Path
    version_dir: Path
    config_path: Path
    card_path: Path
    limits: P.ServingLimits
    weights_sha256: str
    export_id: str  # in config.pbtxt: the launcher checks that the server answering on its port serves it
    bundled_encoders: dict[str, str] = field(
        default_factory=dict
    )  # recorded location -> folder under version
    external_encoders: dict[str, str] = field(
        default_factory=dict
    )  # config field -> location needed at serving

    def to_dict(self) -> dict:
        data = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}


def default_limits(checkpoint_config: dict, steps: int = 20, guidance: float = 4.0) -> P.ServingLimits:
    """Limits from the checkpoint's preset: its video size is the default, twice that the maximum."""
    video = checkpoint_config["video"]
    return P.ServingLimits(
        max_entities=int(video["max_entities"]),
        max_references=int(video["max_references"]),
        max_frames=2 * int(video["frames"]),
        max_height=2 * int(video["height"]),
        max_width=2 * int(video["width"]),
        default_frames=int(video["frames"]),
        default_height=int(video["height"]),
        default_width=int(video["width"]),
        default_steps=steps,
        default_guidance=guidance,
    )


def _pbtxt_string(value: str) -> str:
    return json.dumps(value)  # JSON string escaping is valid protobuf text escaping for these values


def render_config(
    model_name: str,
    limits: P.ServingLimits,
    max_batch_size: int,
    instance_kind: InstanceKind,
    instance_count: int,
    max_queue_delay_us: int,
    export_id: str = "",
) -> str:
    """config.pbtxt text. With max_batch_size > 0 every tensor gets Triton's leading batch dim."""
    lines = [
        f"name: {_pbtxt_string(model_name)}",
        'backend: "python"',
        f"max_batch_size: {max_batch_size}",
        "",
    ]
    lines.append("input [")
    entries = []
    for name, (dtype, _, dims, optional) in P.INPUTS.items():
        opt = " optional: true" if optional else ""
        entries.append(f"  {{ name: {_pbtxt_string(name)} data_type: {dtype} dims: {dims}{opt} }}")
    lines += [",\n".join(entries), "]", "output ["]
    outputs = [
        f"  {{ name: {_pbtxt_string(name)} data_type: {dtype} dims: {dims} }}"
        for name, (dtype, dims) in P.OUTPUTS.items()
    ]
    lines += [",\n".join(outputs), "]", ""]
    kind = {"auto": "KIND_AUTO", "cpu": "KIND_CPU", "gpu": "KIND_GPU"}[instance_kind]
    lines.append(f"instance_group [ {{ kind: {kind} count: {instance_count} }} ]")
    if max_batch_size > 0:
        # Triton only groups requests whose tensor shapes match (same number of entities and images).
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {max_queue_delay_us} }}")
    lines.append("")
    lines.append("parameters [")
    params = [
        f"  {{ key: {_pbtxt_string(k)} value: {{ string_value: {_pbtxt_string(v)} }} }}"
        for k, v in {**limits.to_parameters(), **({EXPORT_ID_KEY: export_id} if export_id else {})}.items()
    ]
    lines += [",\n".join(params), "]", ""]
    return "\n".join(lines)


def _next_version(model_dir: Path) -> int:
    versions = (
        [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        if model_dir.is_dir()
        else []
    )
    return max(versions, default=0) + 1


def _copy_package(source: Path, target: Path, only: tuple[str, ...] | None = None) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    if only is None:
        shutil.copytree(source, target, ignore=ignore)
        return
    target.mkdir(parents=True)
    for name in only:
        shutil.copy2(source / name, target / name)


def bundle_encoders(config: dict, version_dir: Path, bundle: bool) -> tuple[dict[str, str], dict[str, str]]:
    """Copy each pretrained encoder folder (downloading s3:// ones) into `<version>/encoders/`.

    Returns (bundled: location -> folder relative to the version, external: field -> location left
    for the serving host, i.e. builtin package models, or everything when bundle is False)."""
    bundled: dict[str, str] = {}
    external: dict[str, str] = {}
    for section, key in ENCODER_FIELDS:
        location = (config.get(section) or {}).get(key)
        if not location or location in bundled:
            continue
        if not bundle or location.startswith(BUILTIN_PREFIX):
            external[f"{section}.{key}"] = location
            continue
        source = materialize(location)
        relative = f"encoders/{section}_{key}"
        if source.is_dir():
            shutil.copytree(source, version_dir / relative, ignore=shutil.ignore_patterns(".git"))
        else:
            (version_dir / relative).mkdir(parents=True)
            shutil.copy2(source, version_dir / relative / source.name)
            relative = f"{relative}/{source.name}"
        bundled[location] = relative
    (version_dir / "encoders.json").write_text(json.dumps(bundled, indent=2))
    return bundled, external


def read_checkpoint(checkpoint_dir: Path) -> dict:
    """The checkpoint's metadata (config.json); refuses folders that are not a Video Alchemist checkpoint."""
    missing = [name for name in CHECKPOINT_FILES if not (checkpoint_dir / name).is_file()]
    if missing:
        raise ExportError(
            f"{checkpoint_dir} is not a Video Alchemist checkpoint: missing {', '.join(missing)}"
        )
    try:
        meta = json.loads((checkpoint_dir / "config.json").read_text())
        meta["config"]["video"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ExportError(
            f"{checkpoint_dir}/config.json has no model config ({type(exc).__name__}: {exc})"
        ) from exc
    return meta


def export_model_repository(
    checkpoint_dir: str | Path,
    repository_dir: str | Path,
    model_name: str = "video_alchemist",
    version: int | None = None,
    max_batch_size: int = 4,
    instance_kind: InstanceKind = "auto",
    instance_count: int = 1,
    max_queue_delay_us: int = 0,
    limits: P.ServingLimits | None = None,
    overwrite: bool = False,
    bundle: bool = True,
) -> ExportResult:
    """Write one version of `model_name` into `repository_dir` (next free version when None).

    `checkpoint_dir` may be an s3:// URI; `bundle=False` leaves pretrained encoders where the
    checkpoint's config points (the serving host must then reach them)."""
    checkpoint_dir = materialize(checkpoint_dir) if is_s3(checkpoint_dir) else Path(checkpoint_dir)
    repository_dir = Path(repository_dir)
    if instance_kind not in ("auto", "cpu", "gpu"):
        raise ExportError(f"instance_kind={instance_kind!r}; expected 'auto', 'cpu' or 'gpu'")
    if instance_count < 1 or max_batch_size < 0:
        raise ExportError(
            f"instance_count={instance_count} must be >= 1 and max_batch_size={max_batch_size} >= 0"
        )
    if not model_name or not all(c.isalnum() or c in "_-." for c in model_name):
        raise ExportError(f"model_name={model_name!r} must be non-empty letters, digits, '_', '-' or '.'")
    meta = read_checkpoint(checkpoint_dir)
    config = meta["config"]
    limits = limits or default_limits(config)

    model_dir = repository_dir / model_name
    version = _next_version(model_dir) if version is None else version
    if version < 1:
        raise ExportError(f"version={version} must be >= 1 (Triton version folders are positive integers)")
    version_dir = model_dir / str(version)
    if version_dir.exists():
        if not overwrite:
            raise ExportError(f"{version_dir} exists; pass another version or overwrite=True")
        shutil.rmtree(version_dir)
    version_dir.mkdir(parents=True)

    for name in CHECKPOINT_FILES:
        (version_dir / "checkpoint").mkdir(exist_ok=True)
        shutil.copy2(checkpoint_dir / name, version_dir / "checkpoint" / name)
    _copy_package(Path(model_package.__file__).parent, version_dir / "src" / "model")
    serving_dir = Path(serving_package.__file__).parent
    _copy_package(serving_dir, version_dir / "src" / "serving", SERVING_FILES)
    shutil.copy2(serving_dir / "triton_model.py", version_dir / "model.py")

    config_path = model_dir / "config.pbtxt"
    export_id = uuid.uuid4().hex
    config_path.write_text(
        render_config(
            model_name, limits, max_batch_size, instance_kind, instance_count, max_queue_delay_us, export_id
        )
    )
    bundled, external = bundle_encoders(config, version_dir, bundle)
    weights_sha = file_sha256(version_dir / "checkpoint" / "model.safetensors")
    result = ExportResult(
        repository_dir=repository_dir,
        model_name=model_name,
        version=version,
        model_dir=model_dir,
        version_dir=version_dir,
        config_path=config_path,
        card_path=model_dir / "README.md",
        limits=limits,
        weights_sha256=weights_sha,
        export_id=export_id,
        bundled_encoders=bundled,
        external_encoders=external,
    )
    provenance = {
        **result.to_dict(),
        "source_checkpoint": str(checkpoint_dir.resolve()),
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "preset": config.get("name"),
        "stage": meta.get("stage"),
        "random_weight_encoders": meta.get("random_weights", []),
        "max_batch_size": max_batch_size,
        "instance_kind": instance_kind,
        "instance_count": instance_count,
    }
    (version_dir / "export.json").write_text(json.dumps(provenance, indent=2))
    result.card_path.write_text(
        render_model_card(result, meta, max_batch_size, instance_kind, instance_count)
    )
    return result


def render_model_card(
    result: ExportResult, meta: dict, max_batch_size: int, instance_kind: str, instance_count: int
) -> str:
    config = meta["config"]
    dit = config["dit"]
    lim = result.limits
    random_encoders = meta.get("random_weights", [])
    inputs = "\n".join(
        f"| `{name}` | {dtype} | {dims} | {'no' if optional else 'yes'} |"
        for name, (_, dtype, dims, optional) in P.INPUTS.items()
    )
    encoders = [f"- `{k}`: bundled in `{v}`" for k, v in result.bundled_encoders.items()]
    encoders += [
        f"- `{k}`: `{v}` (must exist on the serving host)" for k, v in result.external_encoders.items()
    ]
    encoder_lines = "\n".join(encoders) or "- none: every weight is in `checkpoint/`"
    warning = (
        f"\n**Warning:** encoders with random weights: {', '.join(random_encoders)}. "
        "Outputs carry no pretrained knowledge from them; do not use this version for real users.\n"
        if random_encoders
        else ""
    )
    if config.get("name") in CPU_PRESETS:
        warning += (
            f"\n**What to expect:** preset `{config.get('name')}` is sized for CPU minutes: its videos are colour "
            "fields where the references belong (`small`) or noise (`tiny`), never recognisable objects.\n"
        )
    return f"""# {result.model_name} (Video Alchemist), latest export: version {result.version}

Multi-subject, open-set personalized text-to-video diffusion transformer (rectified flow), served by
Triton's Python backend. Each request: a prompt, optional entity words each with 1-{lim.max_references}
reference images, an optional background image; answer: the video as uint8 frames and as MP4.
{warning}
## This version
- preset `{config.get("name")}`, DiT hidden {dit["hidden_size"]}, depth {dit["depth"]}, heads {dit["num_heads"]},
  sampler `{config["flow"]["sampler"]}`, training stage {meta.get("stage")}
- weights sha256 `{result.weights_sha256}`
- pretrained encoders:
{encoder_lines}

## Serving
- instance group: {instance_kind} x {instance_count}; max batch size {max_batch_size}
  (dynamic batching groups requests with equal tensor shapes; each is sampled with its own seed)
- start locally: `alchemist serve --repository {result.repository_dir}`
- call: `alchemist generate --server localhost:8000 --model-name {result.model_name} --prompt "a cat on the grass" --ref cat=cat.png --out v.mp4`
  (each `--ref` word must occur in the prompt)

## Inputs (each with a leading batch dimension of 1)
| name | dtype | dims | required |
|---|---|---|---|
{inputs}

Outputs: `VIDEO` uint8 [T, H, W, 3], `MP4` bytes (H.264, {lim.fps} fps).

## Limits (requests outside them get an INVALID_ARG error naming the input)
- prompt: 1-{lim.max_prompt_chars} characters; entity words must occur in it
- entities: at most {lim.max_entities}; images per entity: 1-{lim.max_references}
- images: PNG/JPEG/WebP, at most {lim.max_image_bytes} bytes and {lim.max_image_pixels} pixels (checked from the
  header before decoding)
- frames <= {lim.max_frames}, height <= {lim.max_height}, width <= {lim.max_width} (and multiples of the model's
  stride); steps 1-{lim.max_steps}; guidance 0-{lim.max_guidance}; step-cache threshold 0-{lim.max_step_cache}
- defaults: {lim.default_frames}x{lim.default_height}x{lim.default_width}, {lim.default_steps} steps,
  guidance {lim.default_guidance}, step cache off (0: every step sampled, the exact video)

## Intended use and limits
Research and product prototyping of personalized video. Identity fidelity depends on reference
quality; the model can copy-paste reference appearance. Outputs may depict real people from their
photos: obtain consent for every reference image.
"""
