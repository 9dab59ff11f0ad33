"""The one video reader and writer: frame sampling, deterministic bytes, and one verdict on a truncated clip
(a real clip from ../shared when present, and a clip the project writes itself, so it runs without one)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from components.media import VideoError, read_video, write_mp4
from components.train.config import SampleSize
from components.train.preflight import any_readable_clip
from components.validate.tables import _FileChecker

REAL_CLIP = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "clips" / "dog_play.mp4"
SIZE = SampleSize(frames=4, height=16, width=24, reference_size=24, max_entities=4, max_references=3)


def moving_square(frames: int = 24, height: int = 32, width: int = 48) -> np.ndarray:
    video = np.full((frames, height, width, 3), 90, np.uint8)
    for t in range(frames):
        video[t, 8:20, t : t + 12] = (220, 40, 40)
    return video


@pytest.fixture(params=["real", "written"])
def clip(request, tmp_path: Path) -> Path:
    if request.param == "written":
        return write_mp4(moving_square(), tmp_path / "written.mp4", fps=8)
    if not REAL_CLIP.is_file():
        pytest.skip(f"real clips not found at {REAL_CLIP.parent}")
    return REAL_CLIP


def test_a_whole_clip_decodes_and_samples_as_each_step_asks(clip: Path) -> None:
    video = read_video(clip)
    n = len(video.frames)
    assert video.fps > 0 and video.source_size == (video.frames.shape[2], video.frames.shape[1])
    assert np.array_equal(read_video(clip, max_frames=3).frames, video.frames[:3])
    at = read_video(clip, at=(0.05, 0.5, 0.95)).frames
    assert np.array_equal(at, video.frames[[int(0.05 * n), int(0.5 * n), int(0.95 * n)]])
    spread = read_video(clip, count=4, cover=(16, 24)).frames
    assert spread.shape == (4, 16, 24, 3)
    assert max(read_video(clip, max_side=20).frames.shape[1:3]) <= 20


@pytest.mark.parametrize("kept", [0.3, 0.6, 0.9])
def test_a_truncated_clip_is_an_error_naming_it_and_no_step_takes_it(clip: Path, kept: float, tmp_path):
    cut = tmp_path / "media" / f"cut-{clip.stem}.mp4"
    cut.parent.mkdir(exist_ok=True)
    data = clip.read_bytes()
    cut.write_bytes(data[: int(len(data) * kept)])
    with pytest.raises(VideoError, match=re.escape(f"video {cut} ")):
        read_video(cut)
    assert _FileChecker(tmp_path.resolve()).video(f"media/{cut.name}") is None  # validation: unreadable
    assert not any_readable_clip(tmp_path, [{"video_path": f"media/{cut.name}"}], SIZE)  # training: refused
    whole = tmp_path / "media" / clip.name
    whole.write_bytes(data)
    assert any_readable_clip(tmp_path, [{"video_path": f"media/{whole.name}"}], SIZE)


def test_the_writer_gives_the_same_bytes_for_the_same_frames_and_pads_odd_sizes(tmp_path: Path) -> None:
    frames = moving_square(height=31, width=47)
    first, second = (write_mp4(frames, tmp_path / f"{i}.mp4", fps=29.97) for i in range(2))
    assert first.read_bytes() == second.read_bytes()
    video = read_video(first)
    assert video.frames.shape == (24, 32, 48, 3) and abs(video.fps - 29.97) < 0.01
    assert np.abs(video.frames[:, :31, :47].astype(int) - frames).mean() < 3


def test_a_missing_or_empty_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match=re.escape(f"video {tmp_path / 'none.mp4'} does not exist")):
        read_video(tmp_path / "none.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty.mp4 is unreadable"):
        read_video(tmp_path / "empty.mp4")
