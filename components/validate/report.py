"""The outcome of a validation run: what failed and on which rows, as terminal text, JSON and HTML."""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.validate.suite import ROW_ID

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult


class DataValidationError(ValueError):
    """A dataset broke its expectations; the message is the human-readable summary."""


@dataclass
class FailedExpectation:
    table: str  # schema, samples, entities or splits
    check: str  # what the expectation means, in words
    expectation: str  # the GX expectation type
    column: str | None
    unexpected_count: int
    row_ids: list[str] = field(default_factory=list)  # sample ids, "sample_id:word", field or split names
    values: list[Any] = field(default_factory=list)  # the offending values, aligned with row_ids
    error: str | None = None  # set when the expectation itself could not run

    def offenders(self, max_rows: int | None = None) -> list[str]:
        """Row ids, each with its offending value unless the check is a plain yes/no."""
        pairs = zip(self.row_ids[:max_rows], self.values[:max_rows], strict=False)
        return [rid if isinstance(v, bool) or v is None else f"{rid} ({v})" for rid, v in pairs]

    def describe(self, max_rows: int) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        lines = [f"FAILED {self.check}  [{where}: {self.expectation}]"]
        if self.error:
            lines.append(f"    error: {self.error}")
        shown = self.offenders(max_rows)
        if shown:
            more = f" ... and {len(self.row_ids) - max_rows} more" if len(self.row_ids) > max_rows else ""
            noun = "row" if self.unexpected_count == 1 else "rows"
            lines.append(f"    {self.unexpected_count} {noun}: {', '.join(shown)}{more}")
        return "\n".join(lines)


@dataclass
class ValidationOutcome:
    success: bool
    dataset_dir: Path
    statistics: dict[str, Any]
    failures: list[FailedExpectation]
    json_path: Path
    html_path: Path
    max_listed_rows: int = 20

    def summary(self) -> str:
        stats = self.statistics
        status = "PASSED" if self.success else "FAILED"
        lines = [
            f"Dataset validation {status}: {self.dataset_dir}",
            f"  {stats['successful_expectations']}/{stats['evaluated_expectations']} expectations met; "
            f"{stats.get('num_samples', 0)} samples, {stats.get('num_entities', 0)} entities, "
            f"splits {stats.get('samples_per_split', {})}",
        ]
        lines += [failure.describe(self.max_listed_rows) for failure in self.failures]
        lines.append(f"  report: {self.html_path}")
        return "\n".join(lines)

    def raise_for_failure(self) -> None:
        if not self.success:
            raise DataValidationError(self.summary())


def collect_failures(results: dict[str, ExpectationSuiteValidationResult]) -> list[FailedExpectation]:
    failures = []
    for table, result in results.items():
        for item in result.results:
            if item.success:
                continue
            config = item.expectation_config
            kwargs = config.kwargs
            column = kwargs.get("column") or kwargs.get("column_A") or ",".join(kwargs.get("column_list", []))
            indices = item.result.get("unexpected_index_list") or []
            error = None
            if item.exception_info and item.exception_info.get("raised_exception"):
                error = item.exception_info.get("exception_message")
            failures.append(
                FailedExpectation(
                    table=table,
                    check=config.description or config.type,
                    expectation=config.type,
                    column=column or None,
                    unexpected_count=int(item.result.get("unexpected_count") or len(indices)),
                    row_ids=[str(index[ROW_ID]) for index in indices],
                    values=[
                        _plain(index.get(kwargs.get("column") or kwargs.get("column_A"))) for index in indices
                    ],
                    error=error,
                )
            )
    return failures


def write_reports(outcome: ValidationOutcome, results: dict[str, ExpectationSuiteValidationResult]) -> None:
    """validation.json (ours + raw GX results), validation.html (summary) and one GX data-docs page per table."""
    from great_expectations.render.renderer.page_renderer import ValidationResultsPageRenderer
    from great_expectations.render.view.view import DefaultJinjaPageView

    report_dir = outcome.html_path.parent
    report_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "success": outcome.success,
        "dataset": str(outcome.dataset_dir),
        "statistics": outcome.statistics,
        "failures": [asdict(f) for f in outcome.failures],
        "results": {table: result.to_json_dict() for table, result in results.items()},
    }
    outcome.json_path.write_text(json.dumps(payload, indent=2, default=str))
    pages = {}
    for table, result in results.items():
        page = report_dir / f"validation-{table}.html"
        page.write_text(DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result)))
        pages[table] = page.name
    outcome.html_path.write_text(_summary_html(outcome, pages))


def _summary_html(outcome: ValidationOutcome, pages: dict[str, str]) -> str:
    esc = html.escape
    colour = "#1a7f37" if outcome.success else "#cf222e"
    rows = "".join(
        f"<tr><td>{esc(f.table)}</td><td>{esc(f.check)}</td><td><code>{esc(f.expectation)}</code></td>"
        f"<td>{esc(f.column or '')}</td><td>{f.unexpected_count}</td>"
        f"<td>{esc(', '.join(f.offenders()) or (f.error or ''))}</td></tr>"
        for f in outcome.failures
    )
    stats = "".join(
        f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in outcome.statistics.items()
    )
    links = " · ".join(f'<a href="{esc(p)}">{esc(t)}</a>' for t, p in pages.items())
    failures = (
        "<h2>Failed expectations</h2><table><tr><th>table</th><th>check</th><th>expectation</th>"
        f"<th>column</th><th>rows</th><th>offending ids</th></tr>{rows}</table>"
        if outcome.failures
        else "<p>Every expectation was met.</p>"
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Dataset validation</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}</style></head>
<body><h1 style="color:{colour}">Dataset validation {"passed" if outcome.success else "failed"}</h1>
<p>{esc(str(outcome.dataset_dir))}</p><h2>Statistics</h2><table>{stats}</table>{failures}
<h2>Great Expectations results per table</h2><p>{links}</p></body></html>
"""


def _plain(value: Any) -> Any:
    """numpy scalars -> Python, so the values survive json and compare plainly in tests."""
    return value.item() if hasattr(value, "item") else value
