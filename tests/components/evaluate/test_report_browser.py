"""The evaluation report in a real headless Chromium: it requests no network URL and shows every label a
reviewer needs (run, model version, data revision, n per mode, metric legend, captioned tiles, prompts)."""

from __future__ import annotations

from pathlib import Path

from components.evaluate.benchmark import load_benchmark
from components.evaluate.report import ReportContext, write_report
from components.evaluate.runner import evaluate_videos
from tests.browser.chromium import requires_chromium, visit

CHECKS = {
    "title": "document.querySelector('h1').textContent",
    "context": "document.querySelector('#context').innerText",
    "per_mode_header": "[...document.querySelectorAll('#per-mode th')].map(e => e.textContent)",
    "per_mode_rows": "[...document.querySelectorAll('#per-mode tr')].slice(1).map(r => r.innerText)",
    "legend": "[...document.querySelectorAll('#legend li')].map(e => e.innerText)",
    "captions": "[...document.querySelectorAll('figcaption')].map(e => e.textContent)",
    "images_loaded": "[...document.images].every(i => i.complete && i.naturalWidth > 0)",
    "images": "document.images.length",
    "prompts": "[...document.querySelectorAll('td.prompt')].map(e => e.textContent)",
    "warning": "document.querySelector('#random-weights') !== null",
}


@requires_chromium
def test_evaluation_report_renders_offline_with_labels(tmp_path: Path, suite, dog_frames, make_published):
    bench = load_benchmark(make_published(tmp_path / "bench", dog_frames[:4])).select(["subject", "face"], 1)
    videos = {s.key: (dog_frames[:3], 8.0) for s in bench.samples}
    result = evaluate_videos(videos, bench, suite, progress=False)
    context = ReportContext(
        "a" * 32,
        "demo/stage2/tiny/data-3f2a9c1d",
        "work/train/stage2/final",
        None,
        "3f2a9c1d" + "0" * 24 + ".dir",
    )
    write_report(result, tmp_path / "report", bench, videos, context=context)

    page, seen = visit(tmp_path / "report" / "report.html", CHECKS)
    assert page.network_urls() == [] and page.failed == []
    assert page.requests and all(u.startswith("file:") for u in page.requests)
    assert seen["title"] == "Evaluation of run demo/stage2/tiny/data-3f2a9c1d, data 3f2a9c1d"
    for label in (
        "MLflow run",
        "model version",
        "not registered yet",
        "data revision",
        "3f2a9c1d",
        "subject: n=1",
    ):
        assert label in seen["context"], label
    assert seen["per_mode_header"][:2] == ["mode", "n"]
    assert any(row.startswith("subject\t1\t") for row in seen["per_mode_rows"])
    legend = " ".join(seen["legend"])
    for metric in ("Text-S", "Vid-S", "Subj-S", "Face-S", "Dync-D", "higher is better", "Farneback"):
        assert metric in legend, metric
    assert "generated" in seen["captions"] and "ground truth" in seen["captions"]
    assert "reference: dog" in seen["captions"] and "reference: woman" in seen["captions"]
    assert seen["images_loaded"] and seen["images"] == len(seen["captions"])
    assert "a dog in a scene" in seen["prompts"] and seen["warning"]
    assert page.screenshot.stat().st_size > 10_000
