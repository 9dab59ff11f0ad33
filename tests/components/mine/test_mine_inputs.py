"""Bad caption records and degenerate videos are rejected one by one with a reason naming their file."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from components.media import write_mp4
from components.mine import MinerConfig, mine_dataset
from components.mine.captions import CaptionsError, load_captions
from pipelines.commands import mine

FAST = MinerConfig(workers=1, shard_size=8, clip_frames=3, inpaint="opencv")


def test_malformed_caption_lines_go_to_rejects_and_the_rest_is_mined(embedded, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    good = [json.loads(line) for line in embedded.captions.read_text().splitlines()][:2]
    for record in good:
        shutil.copy(embedded.videos / record["file"], videos / record["file"])
    lines = [
        json.dumps(good[0]),
        '{"file": "x.mp4", "caption": "a dog',  # cut off
        json.dumps({"file": "/etc/passwd", "caption": "a dog runs"}),
        json.dumps({"file": "y.mp4", "caption": 42}),
        "[1, 2]",
        json.dumps(good[1]),
    ]
    captions = tmp_path / "captions.jsonl"
    captions.write_text("\n".join(lines) + "\n")
    summary = mine_dataset(str(videos), str(captions), str(tmp_path / "out"), FAST, progress=False)
    rejects = pd.read_parquet(summary.rejects_path).set_index("sample_id")
    refused = rejects[rejects.stage == "captions"]
    assert sorted(refused.index) == [f"{captions}:{n}" for n in (2, 3, 4, 5)]
    assert f"{captions}:2 is not valid JSON" in refused.loc[f"{captions}:2", "reason"]
    assert "must name a file by a relative path" in refused.loc[f"{captions}:3", "reason"]
    assert "caption of 'y.mp4' is a int, expected text" in refused.loc[f"{captions}:4", "reason"]
    mined = set(pd.read_parquet(summary.manifest_path).sample_id) | set(
        rejects[rejects.stage != "captions"].index
    )
    assert mined == {r["file"].removesuffix(".mp4") for r in good}  # both good lines were mined


@pytest.mark.parametrize(
    ("name", "text", "caption"),
    [
        (
            "c.jsonl",
            '{"file": "a.mp4", "caption": "a cat\u2028sleeps"}\n',
            "a cat\u2028sleeps",
        ),  # U+2028 in JSON
        ("c.jsonl", '\ufeff{"file": "a.mp4", "caption": "a cat"}\n', "a cat"),  # byte-order mark
        ("c.csv", '\ufefffile,caption\na.mp4,"a cat\nsleeps"\n', "a cat\nsleeps"),  # BOM, quoted line break
        ("c.csv", 'file,caption\r\na.mp4,"a cat\rsleeps"\r\n', "a cat\rsleeps"),  # found by the fuzz test
    ],
)
def test_valid_records_that_look_odd_are_kept_exactly(tmp_path, name, text, caption):
    (tmp_path / name).write_bytes(text.encode("utf-8"))
    loaded = load_captions(tmp_path / name)
    assert loaded.problems == [] and [(r.file, r.caption) for r in loaded.records] == [("a.mp4", caption)]


def test_msrvtt_entries_without_video_id_are_refused_not_crashed(tmp_path):
    data = {"videos": [{"video_id": "video1"}, {"id": 3}],
            "sentences": [{"video_id": "video1", "caption": "a man sings"}, "oops"]}  # fmt: skip
    (tmp_path / "m.json").write_text(json.dumps(data))
    loaded = load_captions(tmp_path / "m.json")
    assert [(r.file, r.caption) for r in loaded.records] == [("video1.mp4", "a man sings")]
    assert [p.where for p in loaded.problems] == [
        f"{tmp_path}/m.json videos[1]",
        f"{tmp_path}/m.json sentences[1]",
    ]


def test_a_file_that_cannot_be_read_stops_the_run(tmp_path):
    with pytest.raises(CaptionsError, match="cannot be read"):
        load_captions(tmp_path / "missing.jsonl")
    (tmp_path / "c.csv").write_text("video,text\na.mp4,a cat\n")
    with pytest.raises(CaptionsError, match="has no 'file' column"):
        load_captions(tmp_path / "c.csv")
    (tmp_path / "m.json").write_text("{oops")
    with pytest.raises(CaptionsError, match="is not one JSON document"):
        load_captions(tmp_path / "m.json")


def test_sample_ids_stay_unique_when_file_names_collide(embedded, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    source = embedded.videos / "emb-00000.mp4"
    for name in ("a b.mp4", "a_b.mp4", "a_b-1.mp4"):
        shutil.copy(source, videos / name)
    captions = tmp_path / "captions.jsonl"
    captions.write_text(
        "".join(json.dumps({"file": n, "caption": "x"}) + "\n" for n in ("a b.mp4", "a_b.mp4", "a_b-1.mp4"))
    )
    summary = mine_dataset(str(videos), str(captions), str(tmp_path / "out"), FAST, progress=False)
    rejects = pd.read_parquet(summary.rejects_path)
    assert sorted(rejects.sample_id) == ["a_b", "a_b-1", "a_b-1-1"]  # "x" names no entity; three ids, not two


@pytest.mark.parametrize(
    ("size", "expected"),
    [((8, 2000), "is 2000x8 (aspect 250.0); the miner takes at most max_aspect=4.0"),
     ((12, 12), "is 12x12; the shorter side must be at least min_side=16 px")],
)  # fmt: skip
def test_degenerate_videos_are_rejected_with_the_reason(tmp_path, size, expected):
    videos = tmp_path / "videos"
    rng = np.random.default_rng(0)
    write_mp4(rng.integers(0, 255, (8, *size, 3), dtype=np.uint8), videos / "thin.mp4", fps=8)
    captions = tmp_path / "captions.jsonl"
    captions.write_text(json.dumps({"file": "thin.mp4", "caption": "a dog runs"}) + "\n")
    summary = mine_dataset(str(videos), str(captions), str(tmp_path / "out"), FAST, progress=False)
    rejects = pd.read_parquet(summary.rejects_path)
    assert summary.samples == 0 and list(rejects.stage) == ["video"]
    assert str(videos / "thin.mp4") in rejects.reason[0] and expected in rejects.reason[0]


def test_mine_cli_takes_the_shape_limits(tmp_path):
    app = typer.Typer()
    mine.register(app)
    result = CliRunner().invoke(app, ["mine", "--videos", str(tmp_path), "--captions", str(tmp_path / "c.jsonl"),
                                      "--out", str(tmp_path / "out"), "--min-side", "1"])  # fmt: skip
    assert result.exit_code == 1 and "need 2 <= min_side (1)" in result.output
