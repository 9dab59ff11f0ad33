"""The Great Expectations suites over the flattened dataset tables, and running them in an ephemeral context."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from components.validate.config import ValidationConfig

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult

ROW_ID = "row_id"
SAMPLE_REQUIRED = (
    "sample_id",
    "source",
    "split",
    "caption",
    "video_path",
    "fps",
    "num_frames",
    "width",
    "height",
    "sha256",
    "clip_start",
    "clip_end",
)


def build_expectations(config: ValidationConfig) -> dict[str, list[tuple[str, Any]]]:
    """Table name -> [(what the check means, in words; the GX expectation)]."""
    import great_expectations.expectations as gxe

    def true(column: str, description: str) -> tuple[str, Any]:
        return description, gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[True])

    def between(column: str, low: float | None, high: float | None, description: str, **strict: bool):
        return description, gxe.ExpectColumnValuesToBeBetween(
            column=column, min_value=low, max_value=high, **strict
        )

    schema = [
        true("present", "every field of the manifest contract is present"),
        true("type_ok", "every field has the contract's type"),
    ]
    samples = [
        ("the manifest has at least one sample", gxe.ExpectTableRowCountToBeBetween(min_value=1)),
        ("sample ids are unique", gxe.ExpectColumnValuesToBeUnique(column="sample_id")),
        *[(f"{c} is never null", gxe.ExpectColumnValuesToNotBeNull(column=c)) for c in SAMPLE_REQUIRED],
        (
            f"split is one of {list(config.allowed_splits)}",
            gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(config.allowed_splits)),
        ),
        true("caption_nonblank", "captions are not empty"),
        between(
            "num_frames",
            config.min_frames,
            config.max_frames,
            f"num_frames in [{config.min_frames}, {config.max_frames}]",
        ),
        between(
            "width", config.min_size, config.max_size, f"width in [{config.min_size}, {config.max_size}]"
        ),
        between(
            "height", config.min_size, config.max_size, f"height in [{config.min_size}, {config.max_size}]"
        ),
        between("fps", config.min_fps, config.max_fps, f"fps in [{config.min_fps}, {config.max_fps}]"),
        between(
            "num_entities",
            config.min_entities,
            config.max_entities,
            f"entities per sample in [{config.min_entities}, {config.max_entities}]",
        ),
        true("clip_range_valid", "0 <= clip_start < clip_end"),
        true("paths_inside", "video and background paths are relative and inside the dataset"),
        true("video_readable", "the video exists and every frame decodes"),
        true("video_frames_match", "decoded frame count equals num_frames"),
        true("video_size_match", "decoded frame size equals width x height"),
        *([true("video_sha256_match", "video sha256 matches the manifest")] if config.check_sha256 else []),
        true("background_readable", "the background image (when given) exists and decodes"),
    ]
    entities = [
        (
            "each word names one entity per sample",
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["sample_id", "word"]),
        ),
        (
            f"kind is one of {list(config.allowed_kinds)}",
            gxe.ExpectColumnValuesToBeInSet(column="kind", value_set=list(config.allowed_kinds)),
        ),
        true("word_nonblank", "entity words are not empty"),
        true("word_in_caption", "every entity word occurs in its caption"),
        true("span_matches_word", "caption[token_start:token_end] is the word"),
        between(
            "num_references", config.min_references, None, f"at least {config.min_references} reference(s)"
        ),
        between(
            "num_masks", config.keyframes, config.keyframes, f"one mask per keyframe ({config.keyframes})"
        ),
        true("keyframe_lists_consistent", "masks, boxes, scores and areas have one entry per keyframe"),
        true("scores_finite", "every score is a finite number (no null, NaN or infinity)"),
        true("areas_finite", "every mask area is a finite number (no null, NaN or infinity)"),
        true("boxes_finite", "every box coordinate is a finite number (no null, NaN or infinity)"),
        true("paths_inside", "reference and mask paths are relative and inside the dataset"),
        true("references_readable", "every reference image exists and decodes"),
        true("masks_readable", "every mask image exists and decodes"),
        true("masks_match_frame", "masks have the video's frame size"),
        true("boxes_in_frame", "boxes are x0<x1, y0<y1 inside the frame"),
        ("every entity has mask areas", gxe.ExpectColumnValuesToNotBeNull(column="min_area")),
        between("min_area", 0, None, "mask areas > 0", strict_min=True),
        between("max_area", None, 1, "mask areas < 1", strict_max=True),
        between("min_score", 0, None, "scores >= 0"),
        between("max_score", None, 1, "scores <= 1"),
    ]
    splits = [
        (
            f"enough samples per split (minimums {config.min_samples_per_split})",
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="num_samples", column_B="min_required", or_equal=True
            ),
        )
    ]
    return {"schema": schema, "samples": samples, "entities": entities, "splits": splits}


def run_suites(
    frames: dict[str, pd.DataFrame], config: ValidationConfig
) -> dict[str, ExpectationSuiteValidationResult]:
    """Validate each table with its suite; results keep every offending row's `row_id`."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("manifest")
    result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID]}
    results = {}
    expectations = build_expectations(config)
    for table, frame in frames.items():
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all")
        suite = context.suites.add(gx.ExpectationSuite(name=f"dataset.{table}"))
        for description, expectation in expectations[table]:
            expectation.description = description
            suite.add_expectation(expectation)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(data=batch, suite=suite, name=f"validate.{table}")
        )
        results[table] = definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)
    return results
