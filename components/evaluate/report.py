"""The evaluation report: report.json, report.html (per-mode table, per-sample scores, side-by-side GIFs of
generated vs ground truth vs references) and the same logged to MLflow (metrics, tags, artifacts)."""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from components.evaluate.benchmark import MODES, Benchmark
from components.evaluate.preprocess import alpha_to_white
from components.evaluate.runner import EvaluationResult, VideoInput, load_video_input
from components.evaluate.video_io import read_image, read_video
from components.media import write_gif

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


def _gifs(
    result: EvaluationResult, benchmark: Benchmark, generated: Mapping[str, VideoInput], out: Path, limit: int
) -> dict[str, dict[str, str]]:
    samples = {s.key: s for s in benchmark.samples}
    made: dict[str, dict[str, str]] = {}
    for scores in result.samples[:limit]:
        sample = samples[scores.key]
        name = scores.key.replace("/", "__")
        frames, fps, _ = load_video_input(generated[scores.key], scores.fps or 8.0, None)
        entry = {
            "generated": str(write_gif(frames, out / "gifs" / f"{name}.generated.gif", fps).relative_to(out))
        }
        if sample.gt_video is not None and sample.gt_video.is_file():
            gt, gt_fps = read_video(sample.gt_video, max_frames=64)
            entry["ground_truth"] = str(
                write_gif(gt[:: max(1, round(gt_fps / 8))], out / "gifs" / f"{name}.gt.gif").relative_to(out)
            )
        refs = []
        for i, path in enumerate(p for paths in sample.conditioning.values() for p in paths):
            image = alpha_to_white(read_image(path))
            refs.append(str(write_gif(image[None], out / "gifs" / f"{name}.ref{i}.gif").relative_to(out)))
        entry["references"] = json.dumps(refs)
        made[scores.key] = entry
    return made


def write_report(
    result: EvaluationResult,
    out_dir: str | Path,
    benchmark: Benchmark | None = None,
    generated: Mapping[str, VideoInput] | None = None,
    max_gifs: int = 12,
) -> dict[str, Path]:
    """Write report.json and report.html (and GIFs when `benchmark` and `generated` are given)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    gifs = (
        _gifs(result, benchmark, generated, out, max_gifs)
        if benchmark is not None and generated is not None
        else {}
    )
    present = {k.split("/")[0] for k in result.metrics}
    modes = [m for m in (*MODES, "all") if m in present]
    cols = list(METRIC_NAMES)
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Evaluation report</title>",
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:3px 8px}"
        "table{border-collapse:collapse}.warn{background:#fee;padding:8px;border:1px solid #c00}</style>",
        f"<h1>Evaluation: {html.escape(benchmark.name if benchmark else '')}</h1>",
    ]
    if result.random_weights:
        parts.append(
            "<p class='warn'>Random-weight evaluators: <b>"
            + html.escape(", ".join(result.random_weights))
            + "</b>. Their scores check the plumbing only; they say nothing about quality.</p>"
        )
    parts.append(
        f"<p>Flow backend for Dync-D: <b>{html.escape(str(result.evaluators.get('flow_backend')))}</b>; "
        f"face detector: <b>{html.escape(str(result.evaluators.get('face_detector')))}</b>; "
        f"embedding cache hits/misses: {result.cache.get('hits', 0)}/{result.cache.get('misses', 0)}</p>"
    )
    parts.append(
        "<h2>Per mode</h2><table><tr><th>mode</th>"
        + "".join(f"<th>{METRIC_NAMES[c]}</th>" for c in cols)
        + "</tr>"
    )
    for mode in modes:
        row = "".join(f"<td>{_fmt(result.metrics.get(f'{mode}/{c}'))}</td>" for c in cols)
        parts.append(f"<tr><td>{html.escape(mode)}</td>{row}</tr>")
    parts.append("</table>")
    toy = {k: v for k, v in result.metrics.items() if k.startswith("toy/")}
    if toy:
        parts.append(
            "<h2>Toy world</h2><table>"
            + "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in toy.items())
            + "</table>"
        )
    header = [
        "sample",
        "mode",
        "Text-S",
        "Vid-S",
        "Subj-S",
        "Face-S",
        "dynamic",
        "toy fidelity",
        "toy binding",
        "videos",
    ]
    parts.append("<h2>Per sample</h2><table><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>")
    for s in result.samples:
        media = ""
        if s.key in gifs:
            g = gifs[s.key]
            media = f"<img src='{g['generated']}' title='generated'>"
            if "ground_truth" in g:
                media += f" <img src='{g['ground_truth']}' title='ground truth'>"
            media += "".join(f" <img src='{r}' title='reference'>" for r in json.loads(g["references"]))
        cells = [
            s.sample_id,
            s.mode,
            s.text_s,
            s.vid_s,
            s.subj_s,
            s.face_s,
            s.dynamic,
            s.toy_fidelity,
            s.toy_binding,
        ]
        parts.append("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in cells) + f"<td>{media}</td></tr>")
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
