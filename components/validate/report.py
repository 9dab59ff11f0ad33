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
    """validation.json (ours + raw GX results), validation.html and one page per table.

    The pages are our own, self-contained HTML (inline style, no script, no link to a CDN), so they render
    the same offline; Great Expectations' data-docs pages load bootstrap, jQuery and a logo from the internet.
    """
    report_dir = outcome.html_path.parent
    report_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "success": outcome.success,
        "dataset": str(outcome.dataset_dir),
        "data_rev": data_revision(outcome.dataset_dir),
        "statistics": outcome.statistics,
        "failures": [asdict(f) for f in outcome.failures],
        "results": {table: result.to_json_dict() for table, result in results.items()},
    }
    outcome.json_path.write_text(json.dumps(payload, indent=2, default=str))
    pages = {}
    for table, result in results.items():
        page = report_dir / f"validation-{table}.html"
        page.write_text(_page(f"Expectations on the {table} table", _results_table(table, result)))
        pages[table] = page.name
    outcome.html_path.write_text(_summary_html(outcome, results, pages))


STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:0 0 1em}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
    ".pass{color:#1a7f37}.fail{color:#cf222e;font-weight:bold}"
)


def _page(title: str, body: str) -> str:
    esc = html.escape
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{STYLE}</style>"
        f"</head><body><h1>{esc(title)}</h1>{body}</body></html>\n"
    )


def data_revision(dataset_dir: Path) -> str | None:
    """The DVC revision in `<dataset>.dvc` beside the folder (written by `alchemist data version`), if any."""
    import yaml

    dvc_file = Path(dataset_dir).with_name(Path(dataset_dir).name + ".dvc")
    if not dvc_file.is_file():
        return None
    outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs") or [{}]
    return outs[0].get("md5")


def _cell(value: Any) -> str:
    """A value as HTML: mappings become small tables, lists comma lists, the rest escaped text."""
    if isinstance(value, dict):
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{_cell(v)}</td></tr>" for k, v in value.items()
        )
        return f"<table>{rows}</table>"
    if isinstance(value, list | tuple):
        return html.escape(", ".join(str(_plain(v)) for v in value))
    return html.escape(str(_plain(value)))


def _results_table(table: str, result: ExpectationSuiteValidationResult) -> str:
    rows = []
    for item in result.results:
        config = item.expectation_config
        kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id", "result_format")}
        found = item.result or {}
        observed = found.get("observed_value", found.get("unexpected_count", ""))
        examples = found.get("partial_unexpected_list") or []
        status = "<span class='pass'>pass</span>" if item.success else "<span class='fail'>FAIL</span>"
        rows.append(
            f"<tr><td>{status}</td><td>{html.escape(config.description or config.type)}</td>"
            f"<td><code>{html.escape(config.type)}</code></td><td>{_cell(kwargs)}</td>"
            f"<td>{_cell(observed)}</td><td>{_cell(examples[:10])}</td></tr>"
        )
    return (
        f"<table id='expectations-{html.escape(table)}'><tr><th>result</th><th>check</th><th>expectation</th>"
        "<th>arguments</th><th>observed / unexpected</th><th>examples</th></tr>" + "".join(rows) + "</table>"
    )


def _rejects_html(dataset_dir: Path) -> str:
    """The miner's rejects (`rejects.parquet`: sample, source, stage, reason), counted per stage and reason."""
    path = Path(dataset_dir) / "rejects.parquet"
    if not path.is_file():
        return "<p id='rejects'>No rejects.parquet in the dataset folder (not mined by `alchemist mine`).</p>"
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    if not rows:
        return "<p id='rejects'>The miner rejected no clip.</p>"
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (str(row.get("stage", "")), str(row.get("reason", "")))
        counts[key] = counts.get(key, 0) + 1
    summary = "".join(
        f"<tr><td>{html.escape(stage)}</td><td>{html.escape(reason)}</td><td>{n}</td></tr>"
        for (stage, reason), n in sorted(counts.items(), key=lambda kv: -kv[1])
    )
    listed = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row.get(c, '')))}</td>" for c in REJECT_COLUMNS) + "</tr>"
        for row in rows[:200]
    )
    return (
        f"<div id='rejects'><p>{len(rows)} rejected.</p><table><tr><th>stage</th><th>reason</th><th>clips</th></tr>"
        f"{summary}</table><table><tr>{''.join(f'<th>{c}</th>' for c in REJECT_COLUMNS)}</tr>{listed}</table></div>"
    )


REJECT_COLUMNS = ("sample_id", "source", "stage", "reason")


def _summary_html(
    outcome: ValidationOutcome, results: dict[str, ExpectationSuiteValidationResult], pages: dict[str, str]
) -> str:
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(f.table)}</td><td>{esc(f.check)}</td><td><code>{esc(f.expectation)}</code></td>"
        f"<td>{esc(f.column or '')}</td><td>{f.unexpected_count}</td>"
        f"<td>{esc(', '.join(f.offenders()) or (f.error or ''))}</td></tr>"
        for f in outcome.failures
    )
    stats = "".join(
        f"<tr><th>{esc(str(k))}</th><td>{_cell(v)}</td></tr>" for k, v in outcome.statistics.items()
    )
    failures = (
        "<h2>Failed expectations</h2><table id='failures'><tr><th>table</th><th>check</th><th>expectation</th>"
        f"<th>column</th><th>rows</th><th>offending ids</th></tr>{rows}</table>"
        if outcome.failures
        else "<p id='failures'>Every expectation was met.</p>"
    )
    rev = data_revision(outcome.dataset_dir) or "not versioned (no .dvc file beside the folder)"
    tables = "".join(
        f"<h3><a href='{esc(pages[t])}'>{esc(t)}</a></h3>{_results_table(t, r)}" for t, r in results.items()
    )
    status = "passed" if outcome.success else "failed"
    body = (
        f"<p class='{'pass' if outcome.success else 'fail'}' id='status'>Dataset validation {status}</p>"
        f"<table id='context'><tr><th>dataset</th><td>{esc(str(outcome.dataset_dir))}</td></tr>"
        f"<tr><th>data revision</th><td>{esc(rev)}</td></tr></table>"
        f"<h2>Statistics</h2><table id='statistics'>{stats}</table>{failures}"
        f"<h2>Mining rejects</h2>{_rejects_html(outcome.dataset_dir)}"
        f"<h2>Every expectation, per table</h2>{tables}"
    )
    return _page(f"Dataset validation {status}", body)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python, so the values survive json and compare plainly in tests."""
    return value.item() if hasattr(value, "item") else value
