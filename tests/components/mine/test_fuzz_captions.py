"""Caption files (JSONL, CSV, MSR-VTT JSON) with good and bad records mixed: every good record is kept exactly,
in order, and every bad one is a problem naming its place; nothing raises."""

import csv
import io
import json
import tempfile
from pathlib import Path

from hypothesis import event, given
from hypothesis import strategies as st

from components.mine.captions import load_captions

FILES = st.from_regex(r"(clips/)?[A-Za-z0-9_][A-Za-z0-9_ .()-]{0,15}\.(mp4|webm)", fullmatch=True)
CAPTIONS = st.one_of(
    st.none(), st.text(max_size=40), st.sampled_from(["a cat\u2028sleeps", " a dog ", '"quoted", yes'])
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def load(name: str, data: bytes):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        return load_captions(path, name=name)


@st.composite
def good_records(draw) -> tuple[dict, tuple[str, str]]:
    """A record the miner must keep, and the (file, caption) it must read as."""
    file, caption = draw(FILES), draw(CAPTIONS)
    row = {"file": file} if caption is None and draw(st.booleans()) else {"file": file, "caption": caption}
    row |= draw(st.dictionaries(st.sampled_from(["id", "extra", "lang"]), JSON_VALUES, max_size=2))
    return row, (file, (caption or "").strip())


@st.composite
def bad_jsonl_lines(draw) -> bytes:
    """A line that is not a minable record: cut-off JSON, another JSON type, a bad file or caption field,
    bytes that are not UTF-8, an escaped lone surrogate, nesting past the parser's depth."""
    row, _ = draw(good_records())
    kind = draw(st.sampled_from(["cut", "not-object", "file", "caption", "utf8", "surrogate", "deep"]))
    event(f"bad JSONL line: {kind}")
    if kind == "cut":
        text = json.dumps(row)
        return text[: draw(st.integers(1, len(text) - 1))].encode()
    if kind == "not-object":
        return json.dumps(draw(JSON_VALUES.filter(lambda v: not isinstance(v, dict)))).encode()
    if kind == "file":
        bad = draw(
            st.sampled_from(
                [None, "", 7, ["a.mp4"], "/etc/passwd", "../up.mp4", "a/../../b.mp4", ".", "a\x00.mp4"]
            )
        )
        return json.dumps({**row, "file": bad}).encode()
    if kind == "caption":
        return json.dumps(
            {**row, "caption": draw(st.sampled_from([1, 2.5, True, ["a cat"], {"text": "a"}]))}
        ).encode()
    if kind == "utf8":
        return json.dumps({"file": row["file"], "caption": "X"}).encode().replace(b"X", b"\xff\xfe")
    if kind == "surrogate":
        return json.dumps({**row, "caption": "a \ud800 cat"}).encode()  # json escapes it as \\ud800
    return b"[" * 100_000 + b"]" * 100_000


@given(st.lists(st.tuples(st.booleans(), st.data()), max_size=12), st.booleans())
def test_jsonl_keeps_every_good_line_and_names_every_bad_one(lines, crlf):
    expected, bad_lines, chunks = [], [], []
    for number, (good, data) in enumerate(lines, start=1):
        if good:
            row, record = data.draw(good_records())
            chunks.append(json.dumps(row, ensure_ascii=data.draw(st.booleans())).encode())
            expected.append(record)
        else:
            chunks.append(data.draw(bad_jsonl_lines()))
            bad_lines.append(number)
    loaded = load("c.jsonl", (b"\r\n" if crlf else b"\n").join(chunks))
    assert [(r.file, r.caption) for r in loaded.records] == expected
    assert [p.where for p in loaded.problems] == [f"c.jsonl:{n}" for n in bad_lines]
    assert all(p.reason.startswith(p.where) for p in loaded.problems)


@given(st.lists(st.tuples(st.booleans(), st.data()), max_size=10))
def test_csv_keeps_every_good_row_and_names_every_bad_one(rows):
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["file", "caption"])
    expected, bad = [], 0
    for good, data in rows:
        if good:
            file, caption = data.draw(FILES), data.draw(st.text(max_size=40))
            writer.writerow([file, caption])
            expected.append((file, caption.strip()))
        else:
            kind = data.draw(st.sampled_from(["extra", "no-file", "absolute", "utf8"]))
            event(f"bad CSV row: {kind}")
            if kind == "utf8":  # csv.writer only writes text; put an undecodable byte in the file itself
                buffer.write("\udcff.mp4,a cat\r\n")
            else:
                file = {"extra": "a.mp4", "no-file": "", "absolute": "/tmp/a.mp4"}[kind]
                writer.writerow([file, "a cat", *(["surplus"] if kind == "extra" else [])])
            bad += 1
    loaded = load("c.csv", buffer.getvalue().encode("utf-8", "surrogateescape"))
    assert [(r.file, r.caption) for r in loaded.records] == expected
    assert len(loaded.problems) == bad and all(p.where.startswith("c.csv:") for p in loaded.problems)


@given(
    st.lists(st.one_of(st.builds(lambda v: {"video_id": v}, st.from_regex(r"video[0-9]{1,3}", fullmatch=True)),
                       JSON_VALUES), max_size=6),
    st.lists(st.one_of(st.builds(lambda v, c: {"video_id": v, "caption": c},
                                 st.from_regex(r"video[0-9]{1,3}", fullmatch=True), st.text(max_size=20)),
                       JSON_VALUES), max_size=8),
    st.integers(1, 3),
)  # fmt: skip
def test_msrvtt_keeps_every_good_sentence_and_names_every_bad_entry(videos, sentences, per_video):
    def good(entry) -> bool:
        return isinstance(entry, dict) and isinstance(entry.get("video_id"), str) and entry["video_id"] != ""

    order: dict[str, list[str]] = {}
    for entry in videos:
        if good(entry):
            order.setdefault(entry["video_id"], [])
    for entry in sentences:
        if good(entry):
            order.setdefault(entry["video_id"], []).append(entry)
    expected = []
    for video_id, said in order.items():
        for entry in said[:per_video] if said else [{"caption": ""}]:
            caption = entry.get("caption")
            if caption is None or isinstance(caption, str):
                expected.append((f"{video_id}.mp4", (caption or "").strip()))
    data = json.dumps({"videos": videos, "sentences": sentences}).encode()
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "m.json").write_bytes(data)
        loaded = load_captions(Path(folder) / "m.json", per_video, name="m.json")
    assert [(r.file, r.caption) for r in loaded.records] == expected
    refused = sum(not good(e) for e in [*videos, *sentences])
    assert len([p for p in loaded.problems if "video_id" in p.reason]) == refused
