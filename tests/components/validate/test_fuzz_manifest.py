"""Random corruption of a mined manifest: validation names every corrupted sample and no untouched one, a
broken schema is reported alone, an unreadable manifest is a ManifestError; nothing else is ever raised."""

import math
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from components.validate import ManifestError, validate_dataset

COPIES = 2  # the three hand-built samples, twice: corrupted ones always have untouched neighbours
BAD_NUMBERS = [math.nan, math.inf, -math.inf, None]
ENTITY_LISTS = ("reference_paths", "mask_paths", "boxes", "scores", "areas")


def _edit_entity(draw, entity: dict, caption: str) -> str:
    kind = draw(st.sampled_from(["scores", "areas", "boxes", "length", "word", "span", "kind", "reference"]))
    if kind == "scores":
        entity["scores"][draw(st.integers(0, 2))] = draw(st.sampled_from([*BAD_NUMBERS, -0.1, 1.5]))
    elif kind == "areas":
        entity["areas"][draw(st.integers(0, 2))] = draw(st.sampled_from([*BAD_NUMBERS, 0.0, 1.0, -0.5, 2.0]))
    elif kind == "boxes":
        box = entity["boxes"][draw(st.integers(0, 2))]
        box[draw(st.integers(0, 3))] = draw(st.sampled_from([*BAD_NUMBERS, -100.0, 1e9]))
    elif kind == "length":
        field = draw(st.sampled_from(ENTITY_LISTS[1:]))
        del entity[field][draw(st.integers(0, len(entity[field]) - 1))]
    elif kind == "word":
        entity["word"] = draw(
            st.text(min_size=1, max_size=8).filter(lambda w: w.strip() and w.lower() not in caption)
        )
    elif kind == "span":
        shift = draw(st.integers(-5, 5).filter(bool))
        entity["token_start"], entity["token_end"] = (
            entity["token_start"] + shift,
            entity["token_end"] + shift,
        )
    elif kind == "kind":
        entity["kind"] = draw(
            st.text(max_size=8).filter(lambda k: k not in ("subject", "object", "background"))
        )
    else:
        entity["reference_paths"][0] = draw(
            st.sampled_from(["../outside.png", "/etc/hosts", "media/none.png", ""])
        )
    return f"entity.{kind}"


@st.composite
def corruption(draw, row: dict, root: Path) -> str:
    """Break one thing of the sample `row` (in place, or its files under `root`); returns what was broken."""
    kind = draw(st.sampled_from(["entity", "number", "range", "path", "sha256", "split", "caption", "file"]))
    if kind == "entity":
        return _edit_entity(draw, draw(st.sampled_from(row["entities"])), row["caption"])
    if kind == "number":
        field = draw(st.sampled_from(["num_frames", "width", "height"]))
        row[field] = draw(st.integers(-(2**31), 2**31 - 1).filter(lambda v: v != row[field]))
    elif kind == "range":
        field = draw(st.sampled_from(["fps", "clip_start"]))
        row[field] = (
            draw(st.sampled_from([*BAD_NUMBERS, -1.0, 0.0, 1e6])) if field == "fps" else row["clip_end"]
        )
    elif kind == "path":
        row["video_path"] = draw(st.sampled_from(["../clip.mp4", "/etc/hosts", "media/none.mp4", ""]))
    elif kind == "sha256":
        row["sha256"] = draw(
            st.from_regex(r"[0-9a-f]{64}", fullmatch=True).filter(lambda h: h != row["sha256"])
        )
    elif kind == "split":
        row["split"] = draw(st.text(max_size=6).filter(lambda s: s not in ("train", "val", "test")))
    elif kind == "caption":
        row["caption"] = draw(st.sampled_from(["", "   ", "\t\n"]))
    else:
        target = root / draw(st.sampled_from([row["video_path"], row["entities"][0]["mask_paths"][0]]))
        data = target.read_bytes()
        target.write_bytes(data[: draw(st.integers(0, len(data) // 2))])
    return kind


def _renamed(value, old: str, new: str):
    """A deep copy of `value` with every string's `old` replaced by `new`."""
    if isinstance(value, dict):
        return {k: _renamed(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, old, new) for v in value]
    return value.replace(old, new) if isinstance(value, str) else value


def _copies(rows: list[dict], root: Path) -> list[dict]:
    """The samples again under new ids, each with its own copy of its media."""
    out = []
    for copy in range(1, COPIES):
        for row in rows:
            new_id = f"{row['sample_id']}c{copy}"
            shutil.copytree(root / "media" / row["sample_id"], root / "media" / new_id)
            out.append(
                {**_renamed(row, f"media/{row['sample_id']}/", f"media/{new_id}/"), "sample_id": new_id}
            )
    return out


@settings(max_examples=max(3, settings().max_examples // 10))
@given(st.data())
def test_every_corrupted_sample_is_named_and_no_untouched_one(valid_dataset, manifest_schema, data):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "dataset"
        shutil.copytree(valid_dataset, root)
        rows = pq.read_table(root / "manifest.parquet").to_pylist()
        rows += _copies(rows, root)
        mode = data.draw(st.sampled_from(["samples"] * 4 + ["schema", "unreadable"]))
        event(f"corruption: {mode}")
        if mode == "unreadable":
            manifest = (root / "manifest.parquet").read_bytes()
            manifest = manifest[: data.draw(st.integers(0, len(manifest) - 1))]
            (root / "manifest.parquet").write_bytes(manifest)
            with pytest.raises(ManifestError, match="manifest.parquet"):
                validate_dataset(root, Path(folder) / "report")
            return
        if mode == "schema":
            schema = manifest_schema
            index = data.draw(
                st.integers(0, len(schema) - 1).filter(lambda i: schema.types[i] != pa.string())
            )
            field = schema.field(index)
            if data.draw(st.booleans()):  # drop the field, else store it as text
                schema = schema.remove(index)
                rows = [{k: v for k, v in r.items() if k != field.name} for r in rows]
            else:
                schema = schema.set(index, pa.field(field.name, pa.string()))
                rows = [{**r, field.name: str(r[field.name])} for r in rows]
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), root / "manifest.parquet")
            outcome = validate_dataset(root, Path(folder) / "report")
            assert not outcome.success and {f.table for f in outcome.failures} == {"schema"}
            assert {i for f in outcome.failures for i in f.row_ids} <= {
                field.name,
                f"entities.{field.name}",
            } | {f"entities.{name}" for name in ("word", "kind", "token_start", "token_end", *ENTITY_LISTS)}
            return
        chosen = data.draw(
            st.lists(st.sampled_from([r["sample_id"] for r in rows]), min_size=1, max_size=3, unique=True)
        )
        for row in rows:
            if row["sample_id"] in chosen:
                event(f"corrupted: {data.draw(corruption(row, root))}")
        pq.write_table(pa.Table.from_pylist(rows, schema=manifest_schema), root / "manifest.parquet")
        outcome = validate_dataset(root, Path(folder) / "report")
        flagged = {i for f in outcome.failures if f.table != "splits" for i in f.row_ids}
        owners = {str(i).split(":")[0] for i in flagged}
        assert owners == set(chosen), outcome.summary()
