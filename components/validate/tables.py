"""Flatten a mined dataset into the tables the expectations run on.

Great Expectations checks columns, so everything that needs the file system or the caption (does the
video decode, does the word occur in its caption, is the mask as large as the frame) is computed here
once, as a boolean column per check. A check that cannot apply (the masks of an unreadable video have
no frame size to match) is left null, so one broken file is reported once, by the check it breaks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from components.manifest import ENTITY, MANIFEST, NULLABLE, accepts, read_table, type_name
from components.media import VideoError, read_video
from components.storage import file_sha256
from components.validate.config import ValidationConfig


@dataclass
class Tables:
    """One DataFrame per expectation suite; every frame has a `row_id` naming the offending record."""

    schema: pd.DataFrame
    samples: pd.DataFrame | None = None
    entities: pd.DataFrame | None = None
    splits: pd.DataFrame | None = None


def schema_table(schema: pa.Schema) -> pd.DataFrame:
    """One row per contract field (`components/manifest.py`): is it present, and does its arrow type match."""
    present = {field.name: field.type for field in schema}
    entities = present.get("entities")
    if entities is not None and accepts(MANIFEST.field("entities").type, entities):
        struct = entities.value_type
        present |= {
            f"entities.{struct.field(i).name}": struct.field(i).type for i in range(struct.num_fields)
        }
    fields = [(f.name, f.type) for f in MANIFEST]
    fields += [(f"entities.{ENTITY.field(i).name}", ENTITY.field(i).type) for i in range(ENTITY.num_fields)]
    rows = []
    for name, expected in fields:
        observed = present.get(name)
        ok = observed is not None and (
            accepts(expected, observed) or (name in NULLABLE and pa.types.is_null(observed))
        )
        rows.append(
            {
                "row_id": name,
                "present": observed is not None,
                "type_ok": bool(ok) if observed is not None else None,
                "expected_type": type_name(expected),
                "observed_type": str(observed) if observed is not None else None,
            }
        )
    return pd.DataFrame(rows)


def build_tables(dataset_dir: Path, config: ValidationConfig) -> Tables:
    """Read the manifest and flatten it; stops after the schema table when the schema is broken."""
    table = read_table(dataset_dir)
    schema = schema_table(table.schema)
    if not (schema["present"].all() and schema["type_ok"].fillna(False).all()):
        return Tables(schema=schema)
    checker = _FileChecker(dataset_dir.resolve())
    samples, entities = [], []
    for row in tqdm(table.to_pylist(), desc="checking samples", unit="sample"):
        sample, video_size = _sample_row(row, checker, config)
        samples.append(sample)
        for index, entity in enumerate(row["entities"] or []):
            entities.append(_entity_row(row, index, entity, checker, video_size))
    # Column names come from the row builders themselves, so an empty manifest still has every column.
    blank = {name: None for name in MANIFEST.names} | {"sample_id": ""}
    samples_df = pd.DataFrame(samples, columns=list(_sample_row(blank, checker, config)[0]))
    entities_df = pd.DataFrame(entities, columns=list(_entity_row(blank, 0, {}, checker, None)))
    counts = samples_df["split"].value_counts()
    splits = [
        {
            "row_id": s,
            "num_samples": int(counts.get(s, 0)),
            "min_required": config.min_samples_per_split.get(s, 0),
        }
        for s in dict.fromkeys([*config.allowed_splits, *counts.index])
    ]
    return Tables(schema=schema, samples=samples_df, entities=entities_df, splits=pd.DataFrame(splits))


def _sample_row(
    row: dict[str, Any], checker: _FileChecker, config: ValidationConfig
) -> tuple[dict[str, Any], tuple[int, int] | None]:
    caption = row["caption"] or ""
    video = checker.video(row["video_path"])
    readable = video is not None
    background = row["background_path"]
    sample = {
        "row_id": row["sample_id"],
        **{name: row[name] for name in MANIFEST.names if name != "entities"},
        "num_entities": len(row["entities"] or []),
        "caption_nonblank": bool(caption.strip()),
        "clip_range_valid": _all_set(row["clip_start"], row["clip_end"])
        and 0 <= row["clip_start"] < row["clip_end"],
        "paths_inside": checker.inside(row["video_path"])
        and (background is None or checker.inside(background)),
        "video_readable": readable,
        "video_frames_match": video[0] == row["num_frames"] if readable else None,
        "video_size_match": (video[1], video[2]) == (row["width"], row["height"]) if readable else None,
        "video_sha256_match": (checker.sha256(row["video_path"]) == row["sha256"])
        if readable and config.check_sha256
        else None,
        "background_readable": True if background is None else checker.image(background) is not None,
    }
    return sample, ((video[1], video[2]) if readable else None)


def _entity_row(
    row: dict[str, Any],
    index: int,
    entity: dict[str, Any],
    checker: _FileChecker,
    frame_size: tuple[int, int] | None,
) -> dict[str, Any]:
    caption = (row["caption"] or "").lower()
    word = entity.get("word") or ""
    start, end = entity.get("token_start"), entity.get("token_end")
    references = entity.get("reference_paths") or []
    masks = entity.get("mask_paths") or []
    boxes = entity.get("boxes") or []
    raw_scores, raw_areas = entity.get("scores") or [], entity.get("areas") or []
    # The range checks below see only the finite values; non_finite_fields reports the others.
    scores = [s for s in raw_scores if _is_finite(s)]
    areas = [a for a in raw_areas if _is_finite(a)]
    not_finite = non_finite_fields(entity)
    mask_sizes = [checker.image(m) for m in masks]
    masks_readable = bool(masks) and all(size is not None for size in mask_sizes)
    return {
        "row_id": f"{row['sample_id']}:{word}",
        "sample_id": row["sample_id"],
        "entity_index": index,
        "word": word,
        "kind": entity.get("kind"),
        "token_start": start,
        "token_end": end,
        "word_nonblank": bool(word.strip()),
        "word_in_caption": bool(word.strip()) and word.lower() in caption,
        "span_matches_word": _all_set(start, end) and caption[start:end] == word.lower(),
        "num_references": len(references),
        "num_masks": len(masks),
        "keyframe_lists_consistent": len(masks) == len(boxes) == len(raw_scores) == len(raw_areas),
        "scores_finite": "scores" not in not_finite,
        "areas_finite": "areas" not in not_finite,
        "boxes_finite": "boxes" not in not_finite,
        "paths_inside": all(checker.inside(p) for p in [*references, *masks]),
        "references_readable": all(checker.image(p) is not None for p in references),
        "masks_readable": masks_readable,
        "masks_match_frame": all(size == frame_size for size in mask_sizes)
        if masks_readable and frame_size is not None
        else None,
        "boxes_in_frame": all(_box_in_frame(b, frame_size) for b in boxes)
        if frame_size is not None
        else None,
        "min_area": min(areas) if areas else None,
        "max_area": max(areas) if areas else None,
        "min_score": min(scores) if scores else None,
        "max_score": max(scores) if scores else None,
    }


def non_finite_fields(entity: dict[str, Any]) -> list[str]:
    """The numeric list fields of a manifest entity (`scores`, `areas`, `boxes`) holding an element that
    is null, NaN or infinite. Element by element: min()/max() over a list skip a NaN that is not first."""
    scores, areas = entity.get("scores") or [], entity.get("areas") or []
    coordinates = [v for box in entity.get("boxes") or [] for v in (box if box is not None else [None])]
    lists = {"scores": scores, "areas": areas, "boxes": coordinates}
    return [name for name, values in lists.items() if not all(_is_finite(v) for v in values)]


def _is_finite(value: Any) -> bool:
    """A number that is not None, NaN or infinite."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def _all_set(*values: Any) -> bool:
    return all(v is not None for v in values)


def _box_in_frame(box: list[float] | None, frame_size: tuple[int, int]) -> bool:
    """x0 < x1 and y0 < y1 inside the frame, with one pixel of slack for rounding at the border."""
    if box is None or len(box) != 4 or any(v is None for v in box):
        return False
    x0, y0, x1, y1 = box
    width, height = frame_size
    return -1 <= x0 < x1 <= width + 1 and -1 <= y0 < y1 <= height + 1


class _FileChecker:
    """Resolves manifest paths inside the dataset folder and opens each file once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.image = cache(self._image)
        self.video = cache(self._video)
        self.sha256 = cache(self._sha256)

    def inside(self, relative: str | None) -> bool:
        if not relative or Path(relative).is_absolute():
            return False
        return (self.root / relative).resolve().is_relative_to(self.root)

    def _path(self, relative: str | None) -> Path | None:
        if not self.inside(relative):
            return None
        path = self.root / relative
        return path if path.is_file() else None

    def _image(self, relative: str | None) -> tuple[int, int] | None:
        """(width, height) of a fully decodable image, else None."""
        from PIL import Image

        path = self._path(relative)
        if path is None:
            return None
        try:
            with Image.open(path) as image:
                image.load()
                return image.size
        except (OSError, ValueError, SyntaxError):
            return None

    def _video(self, relative: str | None) -> tuple[int, int, int] | None:
        """(frames, width, height) when the whole video decodes (`components/media.py` decides), else None."""
        path = self._path(relative)
        if path is None:
            return None
        try:
            frames = read_video(path).frames
        except VideoError:
            return None
        return len(frames), frames.shape[2], frames.shape[1]

    def _sha256(self, relative: str) -> str:
        return file_sha256(self.root / relative)
