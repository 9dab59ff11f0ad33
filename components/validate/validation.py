"""`validate_dataset`: run the suite over a mined dataset folder and write its reports."""

from __future__ import annotations

import os
from pathlib import Path

from components.storage import materialize
from components.validate.config import ValidationConfig
from components.validate.report import ValidationOutcome, collect_failures, write_reports
from components.validate.suite import run_suites
from components.validate.tables import build_tables


def validate_dataset(
    dataset_dir: str | os.PathLike, report_dir: str | os.PathLike, config: ValidationConfig | None = None
) -> ValidationOutcome:
    """Validate `dataset_dir` (manifest.parquet + media; a folder or an s3:// prefix) into `report_dir`.

    Writes validation.json, validation.html and one Great Expectations page per table.

    Never raises for bad data: the outcome says what failed; call `outcome.raise_for_failure()` to stop.
    A missing or unreadable manifest raises `ManifestError`, since there is nothing to validate.
    When the manifest's schema breaks the contract only the schema is reported, as every other check
    would fail for the same reason.
    """
    config = config or ValidationConfig()
    dataset = materialize(dataset_dir)
    tables = build_tables(dataset, config)
    frames = {
        name: frame
        for name, frame in (
            ("schema", tables.schema),
            ("samples", tables.samples),
            ("entities", tables.entities),
            ("splits", tables.splits),
        )
        if frame is not None
    }
    results = run_suites(frames, config)
    statistics = {
        "evaluated_expectations": sum(r.statistics["evaluated_expectations"] for r in results.values()),
        "successful_expectations": sum(r.statistics["successful_expectations"] for r in results.values()),
        "unsuccessful_expectations": sum(r.statistics["unsuccessful_expectations"] for r in results.values()),
    }
    if tables.samples is not None and tables.entities is not None:
        statistics |= {
            "num_samples": len(tables.samples),
            "num_entities": len(tables.entities),
            "samples_per_split": {k: int(v) for k, v in tables.samples["split"].value_counts().items()},
            "entities_per_kind": {k: int(v) for k, v in tables.entities["kind"].value_counts().items()},
        }
    report = Path(report_dir)
    outcome = ValidationOutcome(
        success=all(r.success for r in results.values()),
        dataset_dir=dataset,
        statistics=statistics,
        failures=collect_failures(results),
        json_path=report / "validation.json",
        html_path=report / "validation.html",
        max_listed_rows=config.max_listed_rows,
    )
    write_reports(outcome, results)
    return outcome
