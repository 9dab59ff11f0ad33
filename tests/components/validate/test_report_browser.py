"""The validation report in a real headless Chromium: our own self-contained pages (Great Expectations'
data docs load bootstrap, jQuery and a logo from CDNs) request no network URL, and show the data revision,
the mining rejects with their reasons, and counts as tables."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from components.validate import validate_dataset
from components.version.versioning import version_dataset
from tests.browser.chromium import requires_chromium, visit

CHECKS = {
    "status": "document.querySelector('#status').textContent",
    "context": "document.querySelector('#context').innerText",
    "split_cells": "[...document.querySelectorAll('#statistics table th')].map(e => e.textContent)",
    "statistics": "document.querySelector('#statistics').innerText",
    "rejects": "document.querySelector('#rejects').innerText",
    "tables": "[...document.querySelectorAll('h3 a')].map(a => a.textContent)",
    "expectation_rows": "document.querySelectorAll('table[id^=expectations-] tr').length",
    "stylesheets": "document.styleSheets.length",
    "scripts": "document.scripts.length",
}


@requires_chromium
def test_validation_report_renders_offline_with_labels(variant, tmp_path: Path):
    def failing(rows, root):
        rows[0]["split"] = "holdout"

    dataset = variant(failing)
    rejects = [
        {
            "sample_id": "clip-7",
            "source": "videos/clip-7.mp4",
            "stage": "grounding",
            "reason": "no box above 0.35",
        },
        {
            "sample_id": "clip-9",
            "source": "videos/clip-9.mp4",
            "stage": "grounding",
            "reason": "no box above 0.35",
        },
        {"sample_id": "clip-2", "source": "videos/clip-2.mp4", "stage": "decode", "reason": "unreadable mp4"},
    ]
    pq.write_table(pa.Table.from_pylist(rejects), dataset / "rejects.parquet")
    version = version_dataset(dataset, dataset.parent)
    outcome = validate_dataset(dataset, tmp_path / "report")
    assert not outcome.success

    page, seen = visit(outcome.html_path, CHECKS)
    assert page.network_urls() == [] and page.failed == [] and page.requests
    assert seen["status"] == "Dataset validation failed" and seen["scripts"] == 0 and seen["stylesheets"] == 1
    assert version.rev in seen["context"]
    assert {"train", "val"} <= set(seen["split_cells"])  # samples_per_split as a table, not a dict
    assert "{" not in seen["statistics"] and "'" not in seen["statistics"]
    assert "3 rejected" in seen["rejects"] and "no box above 0.35\t2" in seen["rejects"]
    assert "clip-2" in seen["rejects"] and "unreadable mp4" in seen["rejects"]
    assert seen["tables"] == ["schema", "samples", "entities", "splits"] and seen["expectation_rows"] > 40
    for table in seen["tables"]:
        detail, values = visit(
            outcome.html_path.parent / f"validation-{table}.html", {"rows": CHECKS["expectation_rows"]}
        )
        assert detail.network_urls() == [] and values["rows"] > 1, table
