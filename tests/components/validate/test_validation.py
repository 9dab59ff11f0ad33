"""The Great Expectations suite on hand-built datasets: a valid one passes, each defect is named with its rows."""

import json

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from components.manifest import ENTITY, MANIFEST
from components.storage import StorageError
from components.validate import (
    DataValidationError,
    ManifestError,
    ValidationConfig,
    validate_dataset,
)
from components.validate.tables import schema_table
from pipelines.cli import app


def _failed(outcome) -> dict[tuple[str, str | None], list[str]]:
    return {(f.table, f.column): sorted(f.row_ids) for f in outcome.failures}


def test_valid_dataset_passes(valid_dataset, tmp_path):
    outcome = validate_dataset(valid_dataset, tmp_path / "report")
    assert outcome.success, outcome.summary()
    assert outcome.failures == []
    stats = outcome.statistics
    assert (stats["num_samples"], stats["num_entities"]) == (3, 6)
    assert stats["samples_per_split"] == {"train": 2, "val": 1}
    assert stats["entities_per_kind"] == {"subject": 3, "object": 3}
    assert stats["unsuccessful_expectations"] == 0 and stats["evaluated_expectations"] > 40
    saved = json.loads(outcome.json_path.read_text())
    assert saved["success"] is True and set(saved["results"]) == {"schema", "samples", "entities", "splits"}
    assert "Dataset validation passed" in outcome.html_path.read_text()
    assert "word_in_caption" in (outcome.html_path.parent / "validation-entities.html").read_text()
    outcome.raise_for_failure()  # a pass does not raise


def test_each_defect_is_reported_with_its_rows(variant, tmp_path):
    def corrupt(rows, root):
        s0, s1, s2 = rows
        s0["entities"][1]["word"] = "giraffe"  # not in "a dog chases a ball", and the span no longer matches
        (root / s0["entities"][0]["reference_paths"][1]).unlink()
        s1["entities"][0]["areas"] = [0.0, 0.2, 0.3]
        s1["entities"][1]["kind"] = "toy"
        s1["num_frames"] = 1
        video = root / s2["video_path"]
        video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])

    config = ValidationConfig(min_samples_per_split={"train": 1, "val": 2})
    outcome = validate_dataset(variant(corrupt), tmp_path / "report", config)
    assert not outcome.success
    assert _failed(outcome) == {
        ("samples", "num_frames"): ["s1"],
        ("samples", "video_frames_match"): ["s1"],
        ("samples", "video_readable"): ["s2"],
        ("entities", "word_in_caption"): ["s0:giraffe"],
        ("entities", "span_matches_word"): ["s0:giraffe"],
        ("entities", "references_readable"): ["s0:dog"],
        ("entities", "kind"): ["s1:ball"],
        ("entities", "min_area"): ["s1:dog"],
        ("splits", "num_samples"): ["val"],
    }
    summary = outcome.summary()
    assert "FAILED every entity word occurs in its caption" in summary
    assert "s1:ball (toy)" in summary and "s1:dog (0.0)" in summary and "val (1)" in summary
    with pytest.raises(DataValidationError) as raised:
        outcome.raise_for_failure()
    assert str(raised.value) == summary
    saved = json.loads(outcome.json_path.read_text())
    assert saved["success"] is False and len(saved["failures"]) == 9
    assert "s0:giraffe" in outcome.html_path.read_text()


def test_duplicate_ids_and_bad_bounds(variant, tmp_path):
    def duplicate(rows, root):
        rows[2]["sample_id"] = "s1"
        rows[0]["entities"][0]["boxes"][2] = [20.0, 3.0, 2.0, 30.0]  # x0 > x1
        rows[0]["entities"][0]["scores"][0] = 1.5

    outcome = validate_dataset(variant(duplicate), tmp_path / "report")
    assert _failed(outcome) == {
        ("samples", "sample_id"): ["s1", "s1"],
        ("entities", "sample_id,word"): ["s1:ball", "s1:ball", "s1:dog", "s1:dog"],
        ("entities", "boxes_in_frame"): ["s0:dog"],
        ("entities", "max_score"): ["s0:dog"],
    }


def test_schema_break_reports_only_the_schema(variant, manifest_schema, tmp_path):
    entity = manifest_schema.field("entities").type.value_type
    fields = [entity.field(i) for i in range(entity.num_fields) if entity.field(i).name != "areas"]
    schema = pa.schema(
        [f for f in manifest_schema if f.name not in ("sha256", "entities", "fps")]
        + [pa.field("fps", pa.string()), pa.field("entities", pa.list_(pa.struct(fields)))]
    )

    def drop(rows, root):
        for row in rows:
            row["fps"] = "8"
            for entity in row["entities"]:
                del entity["areas"]

    outcome = validate_dataset(variant(drop, schema), tmp_path / "report")
    assert _failed(outcome) == {
        ("schema", "present"): ["entities.areas", "sha256"],
        ("schema", "type_ok"): ["fps"],
    }
    assert "num_samples" not in outcome.statistics


def test_schema_takes_other_widths_of_the_contract_types():
    """A manifest written by another tool (int32, float32, large strings and lists, integer fps) conforms."""

    def narrow(t: pa.DataType) -> pa.DataType:
        if pa.types.is_struct(t):
            return pa.struct([(t.field(i).name, narrow(t.field(i).type)) for i in range(t.num_fields)])
        if pa.types.is_list(t):
            return pa.large_list(narrow(t.value_type))
        return {pa.int64(): pa.int32(), pa.float64(): pa.float32(), pa.string(): pa.large_string()}[t]

    schema = pa.schema([(f.name, pa.int16() if f.name == "fps" else narrow(f.type)) for f in MANIFEST])
    table = schema_table(schema)
    assert (
        table["present"].all() and table["type_ok"].all() and len(table) == len(MANIFEST) + ENTITY.num_fields
    )
    assert dict(zip(table["row_id"], table["expected_type"]))["entities.boxes"] == "list<list<number>>"


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(ManifestError, match="manifest.parquet not found"):
        validate_dataset(tmp_path, tmp_path / "report")
    with pytest.raises(StorageError, match="does not exist"):
        validate_dataset(tmp_path / "no-such-folder", tmp_path / "report")


def test_cli_exit_codes(valid_dataset, variant, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(
        app, ["data", "validate", "--dataset", str(valid_dataset), "--report", str(tmp_path / "a")]
    )
    assert ok.exit_code == 0, ok.output
    assert "Dataset validation PASSED" in ok.output

    def empty_caption(rows, root):
        rows[0]["caption"] = "  "

    bad = variant(empty_caption)
    failed = runner.invoke(app, ["data", "validate", "--dataset", str(bad), "--report", str(tmp_path / "b")])
    assert failed.exit_code == 1
    assert "FAILED captions are not empty" in failed.output and "1 row: s0" in failed.output
    assert (tmp_path / "b" / "validation.html").is_file()
