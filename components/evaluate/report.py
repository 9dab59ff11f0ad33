"""The evaluation report: report.json, report.html (per-mode table, per-sample scores, side-by-side GIFs of
generated vs ground truth vs references) and the same logged to MLflow (metrics, tags, artifacts)."""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.evaluate.benchmark import MODES, Benchmark
from components.evaluate.preprocess import alpha_to_white
from components.evaluate.runner import EvaluationResult, VideoInput, load_video_input
from components.evaluate.video_io import read_image
from components.media import read_video, write_gif

METRIC_NAMES = {
    "text_s": "Text-S",
    "vid_s": "Vid-S",
    "subj_s": "Subj-S",
    "face_s": "Face-S",
    "dync_d": "Dync-D",
}


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


@dataclass(frozen=True)
class ReportContext:
    """Where the scores belong: the MLflow run, the model and the data it was trained on."""

    run_id: str | None = None
    run_name: str | None = None
    model: str | None = None  # checkpoint folder or "videos from DIR"
    model_version: str | None = None  # registry version(s) made from the run, if any yet
    data_rev: str | None = None


def report_context(run_id: str | None, model: str | None) -> ReportContext:
    """Read the run's name, data revision and registry versions from the current MLflow store."""
    if run_id is None:
        return ReportContext(model=model)
    import mlflow

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    versions = client.search_model_versions(f"run_id='{run_id}'")
    named = ", ".join(f"{v.name} v{v.version}" for v in versions) or None
    return ReportContext(run_id, run.info.run_name, model, named, run.data.tags.get("data.rev"))


# One line per metric: what it measures, its direction, and where chance lies.
LEGEND = {
    "text_s": "CLIP cosine of each generated frame with the prompt; higher is better; pretrained CLIP gives an "
    "unrelated prompt roughly 0.1-0.2 (the paper's best model: 0.27 in subject mode).",
    "vid_s": "CLIP cosine of generated frames with the ground-truth frames at 5/50/95%; higher is better; an "
    "unrelated video scores well above 0 because CLIP embeddings share a common direction (paper: 0.73).",
    "subj_s": "DINO cosine of each detected, masked subject with its reference, a missed detection counting "
    "0; higher is better; 0 when nothing is found (paper: 0.62).",
    "face_s": "ArcFace cosine of detected faces with the reference face, times the share of frames with a face; "
    "higher is better; unrelated faces score about 0 (paper: 0.38).",
    "dync_d": "share of videos whose top-5% flow passes 6 x short side / 256 in enough frame pairs; higher "
    "means more motion, not better quality; a still video scores 0 and per-pixel noise 1.",
}
TOY_LEGEND = {
    "reference_fidelity": "colour-histogram cosine of the generated pixels where each entity should be with "
    "its reference photo; higher is better; chance = the same score of uniform noise (row below).",
    "binding_accuracy": "share of (entity, frame) pairs closer to their own reference than to the other "
    "entities'; higher is better; chance = the noise row below (about 1 / number of entities).",
    "motion": "mean Farneback flow magnitude (pixels per frame); no direction, a still video scores 0.",
}


def _figure(src: str, caption: str) -> str:
    return (
        f"<figure><img src='{html.escape(src)}' alt='{html.escape(caption)}'>"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _tiles(
    result: EvaluationResult, benchmark: Benchmark, generated: Mapping[str, VideoInput], out: Path, limit: int
) -> dict[str, str]:
    """Captioned GIF tiles per sample: generated, ground truth, then each reference with its entity word."""
    samples = {s.key: s for s in benchmark.samples}
    made: dict[str, str] = {}
    for scores in result.samples[:limit]:
        sample = samples[scores.key]
        name = scores.key.replace("/", "__")
        frames, fps, _ = load_video_input(generated[scores.key], scores.fps or 8.0, None)
        gif = write_gif(frames, out / "gifs" / f"{name}.generated.gif", fps)
        tiles = [_figure(str(gif.relative_to(out)), "generated")]
        if sample.gt_video is not None and sample.gt_video.is_file():
            gt = read_video(sample.gt_video, max_frames=64)
            gif = write_gif(gt.frames[:: max(1, round(gt.fps / 8))], out / "gifs" / f"{name}.gt.gif")
            tiles.append(_figure(str(gif.relative_to(out)), "ground truth"))
        i = 0
        for word, paths in sample.conditioning.items():
            kind = (
                "background"
                if sample.background is not None and paths == [sample.background]
                else "reference"
            )
            for path in paths:
                gif = write_gif(alpha_to_white(read_image(path))[None], out / "gifs" / f"{name}.ref{i}.gif")
                tiles.append(_figure(str(gif.relative_to(out)), f"{kind}: {word}"))
                i += 1
        made[scores.key] = "<div class='tiles'>" + "".join(tiles) + "</div>"
    return made


STYLE = (
    "body{font-family:sans-serif;max-width:1200px}td,th{border:1px solid #ccc;padding:3px 8px;vertical-align:top}"
    "table{border-collapse:collapse}.warn{background:#fee;padding:8px;border:1px solid #c00}"
    ".tiles{display:flex;flex-wrap:wrap;gap:6px}figure{margin:0;text-align:center}"
    "figcaption{font-size:12px}img{max-width:160px}dt{font-weight:bold}.prompt{font-style:italic}"
)


def _header(result: EvaluationResult, context: ReportContext, benchmark_name: str) -> list[str]:
    run = context.run_name or (context.run_id[:8] if context.run_id else "not logged")
    title = f"Evaluation of run {run}, data {str(context.data_rev or 'unknown')[:8]}"
    counts = result.benchmark.get("samples_per_mode") or {}
    frames = result.benchmark.get("num_frames")
    facts = {
        "MLflow run": f"{context.run_name or '-'} ({context.run_id or 'not logged'})",
        "model": context.model or "-",
        "model version": context.model_version or "not registered yet (the promotion gate registers it)",
        "data revision": context.data_rev or "unknown",
        "benchmark": f"{benchmark_name} ({result.benchmark.get('layout', '?')}), "
        + ", ".join(f"{m}: n={n}" for m, n in counts.items()),
        "frames scored": "all" if frames is None else f"first {frames}",
        "protocol fingerprint": protocol_fingerprint(result),
    }
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in facts.items())
    return [
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style>",
        f"<h1>{html.escape(title)}</h1>",
        f"<dl id='context'>{items}</dl>",
    ]


def _legend(result: EvaluationResult) -> list[str]:
    flow = str(result.evaluators.get("flow_backend"))
    rows = [f"<li><b>{METRIC_NAMES[k]}</b>: {html.escape(v)}</li>" for k, v in LEGEND.items()]
    if flow == "farneback":
        rows.append(f"<li><b>Dync-D flow</b>: {html.escape(FARNEBACK_NOTE)}</li>")
    toy = [f"<li><b>toy/{k}</b>: {html.escape(v)}</li>" for k, v in TOY_LEGEND.items()]
    has_toy = any(k.startswith("toy/") for k in result.metrics)
    return ["<h2>What the scores mean</h2><ul id='legend'>", *rows, *(toy if has_toy else []), "</ul>"]


FARNEBACK_NOTE = (
    "OpenCV Farneback stands in for RAFT (not installable here). Measured on synthetic motion over real "
    "photographs at 256x256 (benchmarks/farneback_departure.py), its top-5% flow stays within 10% of the "
    "truth for rigid shifts up to 12-32 px per sampled frame pair (beyond, it overestimates) and for a moving "
    "64 px object up to 8-18 px (beyond, it underestimates, down to a fifth of the truth), so fast local "
    "motion may not count as dynamic; values compare only within one flow backend."
)


def write_report(
    result: EvaluationResult,
    out_dir: str | Path,
    benchmark: Benchmark | None = None,
    generated: Mapping[str, VideoInput] | None = None,
    max_gifs: int = 12,
    context: ReportContext | None = None,
) -> dict[str, Path]:
    """Write report.json and report.html (with captioned GIFs when `benchmark` and `generated` are given).

    The page is self-contained (inline style, GIFs beside it): it needs no network to render.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    context = context or ReportContext()
    (out / "report.json").write_text(
        json.dumps({**result.to_dict(), "context": asdict(context)}, indent=2, default=str)
    )
    tiles = (
        _tiles(result, benchmark, generated, out, max_gifs)
        if benchmark is not None and generated is not None
        else {}
    )
    prompts = {s.key: s.prompt for s in benchmark.samples} if benchmark is not None else {}
    parts = _header(result, context, benchmark.name if benchmark else str(result.benchmark.get("name", "")))
    if result.random_weights:
        parts.append(
            "<p class='warn' id='random-weights'>Random-weight evaluators: <b>"
            + html.escape(", ".join(result.random_weights))
            + "</b>. Their scores check the plumbing only; they say nothing about quality.</p>"
        )
    parts.append(
        f"<p>Flow backend for Dync-D: <b>{html.escape(str(result.evaluators.get('flow_backend')))}</b>; "
        f"face detector: <b>{html.escape(str(result.evaluators.get('face_detector')))}</b>; "
        f"embedding cache hits/misses: {result.cache.get('hits', 0)}/{result.cache.get('misses', 0)}</p>"
    )
    present = {k.split("/")[0] for k in result.metrics}
    modes = [m for m in (*MODES, "all") if m in present]
    counts = {**(result.benchmark.get("samples_per_mode") or {}), "all": len(result.samples)}
    cols = list(METRIC_NAMES)
    parts.append(
        "<h2>Per mode</h2><table id='per-mode'><tr><th>mode</th><th>n</th>"
        + "".join(f"<th>{METRIC_NAMES[c]}</th>" for c in cols)
        + "</tr>"
    )
    for mode in modes:
        row = "".join(f"<td>{_fmt(result.metrics.get(f'{mode}/{c}'))}</td>" for c in cols)
        parts.append(f"<tr><td>{html.escape(mode)}</td><td>{counts.get(mode, '-')}</td>{row}</tr>")
    parts.append("</table>")
    toy = {k: v for k, v in result.metrics.items() if k.startswith("toy/") and not k.endswith("_noise")}
    if toy:
        parts.append(
            "<h2>Toy world</h2><table id='toy'><tr><th>score</th><th>generated</th><th>uniform noise (chance)</th></tr>"
        )
        for k, v in toy.items():
            parts.append(
                f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td><td>{_fmt(result.metrics.get(k + '_noise'))}</td></tr>"
            )
        parts.append("</table>")
    parts += _legend(result)
    header = ["sample", "mode", "prompt", "Text-S", "Vid-S", "Subj-S", "Face-S", "dynamic", "toy fidelity"]
    header += ["toy binding", "videos"]
    parts.append(
        "<h2>Per sample</h2><table id='per-sample'><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"
    )
    for s in result.samples:
        cells = [s.sample_id, s.mode]
        numbers = [s.text_s, s.vid_s, s.subj_s, s.face_s, s.dynamic, s.toy_fidelity, s.toy_binding]
        prompt = f"<td class='prompt'>{html.escape(prompts.get(s.key, ''))}</td>"
        parts.append(
            "<tr>"
            + "".join(f"<td>{_fmt(c)}</td>" for c in cells)
            + prompt
            + "".join(f"<td>{_fmt(c)}</td>" for c in numbers)
            + f"<td>{tiles.get(s.key, '')}</td></tr>"
        )
    parts.append("</table>")
    (out / "report.html").write_text("\n".join(parts))
    return {"json": out / "report.json", "html": out / "report.html"}


def protocol_fingerprint(result: EvaluationResult) -> str:
    """Hash of everything that makes two evaluations comparable: the samples (per mode, and their keys and
    prompts), the frames scored, and each evaluator's identity (weights, thresholds, flow, face detector)."""
    bench, ev = result.benchmark, result.evaluators
    basis = {
        "samples_per_mode": bench.get("samples_per_mode"),
        "samples_digest": bench.get("samples_digest"),
        "num_frames": bench.get("num_frames"),
        "model_ids": ev.get("model_ids"),
        "flow": ev.get("flow_backend"),
        "face_detector": ev.get("face_detector"),
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()[:12]


def samples_per_mode(result: EvaluationResult) -> str:
    """`mode=n` pairs in the benchmark's mode order, e.g. `subject=3,multi_subject=2`."""
    counts = result.benchmark.get("samples_per_mode") or {}
    return ",".join(f"{m}={counts[m]}" for m in MODES if m in counts)


def mlflow_tags(result: EvaluationResult) -> dict[str, str]:
    num_frames = result.benchmark.get("num_frames")
    return {
        "evaluator.random_weights": ",".join(result.random_weights),
        "evaluator.flow": str(result.evaluators.get("flow_backend")),
        "evaluator.face_detector": str(result.evaluators.get("face_detector")).split(":")[0],
        "evaluator.benchmark": str(result.benchmark.get("name", "")),
        "evaluator.layout": str(result.benchmark.get("layout", "")),
        "evaluator.samples": str(len(result.samples)),
        "evaluator.samples_per_mode": samples_per_mode(result),
        "evaluator.num_frames": "all" if num_frames is None else str(num_frames),
        "evaluator.protocol": protocol_fingerprint(result),
        **{f"evaluator.model.{k}": v[:250] for k, v in result.evaluators.get("model_ids", {}).items()},
    }


def log_to_mlflow(result: EvaluationResult, report_dir: str | Path, run_id: str | None = None) -> str:
    """Log metrics (`eval/<mode>/<metric>`), tags and the report folder to `run_id` (or the active run)."""
    import time

    import mlflow

    client = mlflow.tracking.MlflowClient()
    if run_id is None:
        active = mlflow.active_run()
        if active is None:
            raise RuntimeError("log_to_mlflow needs run_id or an active MLflow run")
        run_id = active.info.run_id
    stamp = int(time.time() * 1000)
    metrics = [
        mlflow.entities.Metric(f"eval/{k}", float(v), stamp, 0)
        for k, v in result.metrics.items()
        if not np.isnan(v)
    ]
    tags = [mlflow.entities.RunTag(k, v) for k, v in mlflow_tags(result).items()]
    client.log_batch(run_id, metrics=metrics, tags=tags)
    report_dir = Path(report_dir)
    for name in ("report.json", "report.html"):
        if (report_dir / name).is_file():
            client.log_artifact(run_id, str(report_dir / name), artifact_path="evaluation")
    if (report_dir / "gifs").is_dir():
        client.log_artifacts(run_id, str(report_dir / "gifs"), artifact_path="evaluation/gifs")
    return run_id
