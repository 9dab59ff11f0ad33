"""Read a captions file (JSONL, CSV or MSR-VTT annotation JSON) into (file, caption) records.

One bad record must not cost the others: a line that is not JSON, a row without a usable `file`, a
caption that is not text, each becomes a `CaptionProblem` naming the file and line (the miner writes
them to rejects) and the rest is read. Only a file that cannot be read at all (missing, not a
captions format, a CSV without a `file` column, an MSR-VTT file that is not one JSON document) raises
`CaptionsError`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any


class CaptionsError(ValueError):
    """The captions file cannot be read at all: missing, unknown format, or no `file` column."""


@dataclass(frozen=True)
class CaptionRecord:
    """One video and its caption; `file` is relative to the videos folder."""

    file: str
    caption: str


@dataclass(frozen=True)
class CaptionProblem:
    """A record that cannot be mined: `where` is `<captions file>:<line>` (or the MSR-VTT entry)."""

    where: str
    reason: str


@dataclass
class Captions:
    """Good records in file order, and the records refused with their reason."""

    records: list[CaptionRecord] = field(default_factory=list)
    problems: list[CaptionProblem] = field(default_factory=list)

    def add(self, where: str, row: Any) -> None:
        """Keep `row` as a record, or note why not."""
        try:
            self.records.append(_record(row))
        except ValueError as error:
            self.problems.append(CaptionProblem(where, f"{where}: {error}"))


def load_captions(path: str | Path, captions_per_video: int = 1, name: str | None = None) -> Captions:
    """Records and problems in file order; `name` (default: the path) is how problems name the file.

    MSR-VTT annotation JSON keeps the first `captions_per_video` sentences per video. An empty caption is
    kept (the miner rejects it with its reason) so that no sample silently disappears.
    """
    path = Path(path)
    name = name or str(path)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".csv", ".json"):
        raise CaptionsError(f"captions file {name} must be .jsonl, .csv or MSR-VTT .json, got {suffix!r}")
    try:
        data = path.read_bytes()  # not read_text: its newline translation turns a CSV field's "\r" into "\n"
    except OSError as error:
        raise CaptionsError(f"captions file {name} cannot be read: {error.strerror or error}") from error
    # surrogateescape: an undecodable byte spoils its own record only (see _text), not the whole file
    text = data.decode("utf-8-sig", errors="surrogateescape")
    if suffix == ".csv":
        return _csv(text, name)
    if suffix == ".json":
        return _msrvtt(text, name, captions_per_video)
    return _jsonl(text, name)


def _jsonl(text: str, name: str) -> Captions:
    captions = Captions()
    # Split on newlines only: str.splitlines() also splits on U+2028 and friends, which JSON strings may hold.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip(" \t\r"):  # blank by JSON's own whitespace; anything else is a record or a problem
            continue
        where = f"{name}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            captions.problems.append(CaptionProblem(where, f"{where} is not valid JSON: {error}"))
            continue
        except RecursionError:
            captions.problems.append(CaptionProblem(where, f"{where} is nested too deeply to read"))
            continue
        captions.add(where, row)
    return captions


def _csv(text: str, name: str) -> Captions:
    reader = csv.DictReader(io.StringIO(text, newline=""))  # keeps quoted line breaks inside a field
    try:
        header = reader.fieldnames
    except csv.Error as error:
        raise CaptionsError(f"captions file {name} has an unreadable CSV header: {error}") from error
    if header is not None and "file" not in header:
        raise CaptionsError(f"captions file {name} has no 'file' column (header: {header})")
    captions = Captions()
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return captions
        except csv.Error as error:  # the reader resumes at the next line
            where = f"{name}:{reader.line_num}"
            captions.problems.append(CaptionProblem(where, f"{where} is not valid CSV: {error}"))
            continue
        where = f"{name}:{reader.line_num}"
        if None in row:
            captions.problems.append(CaptionProblem(where, f"{where}: more fields than the header names"))
        else:
            captions.add(where, row)


def _msrvtt(text: str, name: str, captions_per_video: int) -> Captions:
    """MSR-VTT: {"videos": [{"video_id": "video0", ...}], "sentences": [{"video_id", "caption"}, ...]}."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise CaptionsError(f"captions file {name} is not one JSON document: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("sentences"), list):
        raise CaptionsError(f"{name} is not an MSR-VTT annotation file (no 'sentences' list)")
    videos = data.get("videos", [])
    if not isinstance(videos, list):
        raise CaptionsError(f"{name} has a 'videos' entry that is not a list")
    captions = Captions()
    per_video: dict[str, list[Any]] = {}
    for kind, entries in (("videos", videos), ("sentences", data["sentences"])):
        for index, entry in enumerate(entries):
            video_id = entry.get("video_id") if isinstance(entry, dict) else None
            if not isinstance(video_id, str) or not video_id:
                where = f"{name} {kind}[{index}]"
                captions.problems.append(CaptionProblem(where, f"{where} has no 'video_id' text"))
                continue
            sentences = per_video.setdefault(video_id, [])
            if kind == "sentences":
                sentences.append((f"{name} sentences[{index}]", entry.get("caption")))
    for video_id, sentences in per_video.items():
        for where, caption in (sentences or [(f"{name} video {video_id!r}", "")])[:captions_per_video]:
            captions.add(where, {"file": f"{video_id}.mp4", "caption": caption})
    return captions


def _record(row: Any) -> CaptionRecord:
    """Raises ValueError saying what is wrong with the row."""
    if not isinstance(row, dict):
        raise ValueError(f"expected an object with 'file' and 'caption', got {type(row).__name__}")
    file = row.get("file")
    if not isinstance(file, str) or not file:
        raise ValueError(f"no 'file' text: {str(row)[:120]}")
    _text(file, "file")
    posix = PurePosixPath(file)
    if "\x00" in file or posix.is_absolute() or ".." in posix.parts or posix.name in ("", ".", ".."):
        raise ValueError(f"file {file!r} must name a file by a relative path inside the videos folder")
    caption = row.get("caption")
    if caption is not None and not isinstance(caption, str):
        raise ValueError(f"caption of {file!r} is a {type(caption).__name__}, expected text")
    return CaptionRecord(file, _text(caption or "", f"caption of {file!r}").strip())


def _text(value: str, what: str) -> str:
    """`value`, unless it holds undecodable bytes or a lone surrogate (which no parquet file can store)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"{what} is not valid UTF-8 text (at character {error.start})") from error
    return value
