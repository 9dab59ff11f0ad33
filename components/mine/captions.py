"""Read a captions file (JSONL, CSV or MSR-VTT annotation JSON) into (file, caption) records."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path


class CaptionsError(ValueError):
    """The captions file is missing, has an unknown format, or lacks the `file`/`caption` fields."""


@dataclass(frozen=True)
class CaptionRecord:
    """One video and its caption; `file` is relative to the videos folder."""

    file: str
    caption: str


def load_captions(path: str | Path, captions_per_video: int = 1) -> list[CaptionRecord]:
    """Records in file order. MSR-VTT annotation JSON keeps the first `captions_per_video` sentences per video.

    An empty caption is kept (the miner rejects it with its reason) so that no sample silently disappears.
    """
    path = Path(path)
    if not path.is_file():
        raise CaptionsError(f"captions file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise CaptionsError(f"{path}:{number} is not valid JSON: {error}") from error
        return [_record(row, path, i) for i, row in enumerate(rows, start=1)]
    if suffix == ".csv":
        with path.open(newline="") as handle:
            return [_record(row, path, i) for i, row in enumerate(csv.DictReader(handle), start=2)]
    if suffix == ".json":
        return _msrvtt(json.loads(path.read_text()), path, captions_per_video)
    raise CaptionsError(f"captions file {path} must be .jsonl, .csv or MSR-VTT .json, got {suffix!r}")


def _record(row: dict, path: Path, number: int) -> CaptionRecord:
    if not isinstance(row, dict) or not row.get("file"):
        raise CaptionsError(f"{path} record {number} has no 'file' field: {str(row)[:120]}")
    caption = row.get("caption")
    return CaptionRecord(str(row["file"]), "" if caption is None else str(caption).strip())


def _msrvtt(data: dict, path: Path, captions_per_video: int) -> list[CaptionRecord]:
    """MSR-VTT: {"videos": [{"video_id": "video0", ...}], "sentences": [{"video_id", "caption"}, ...]}."""
    if not isinstance(data, dict) or "sentences" not in data:
        raise CaptionsError(f"{path} is not an MSR-VTT annotation file (no 'sentences' list)")
    per_video: dict[str, list[str]] = {}
    for video in data.get("videos", []):
        per_video.setdefault(video["video_id"], [])
    for sentence in data["sentences"]:
        per_video.setdefault(sentence["video_id"], []).append(str(sentence.get("caption", "")).strip())
    records = []
    for video_id, captions in per_video.items():
        for caption in (captions or [""])[:captions_per_video]:
            records.append(CaptionRecord(f"{video_id}.mp4", caption))
    return records
