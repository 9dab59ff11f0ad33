"""Fixtures for this folder; the MLflow store (`mlflow_store`) comes from tests/conftest.py."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from components.media import read_video, write_mp4

CLIPS = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "clips"


def _clip(name: str, frames: int = 8, step: int = 6, size: tuple[int, int] = (64, 36)):
    """Frames of a real clip, every `step`-th, downscaled for speed (skips when the clips are absent)."""
    path = CLIPS / name
    if not path.is_file():
        pytest.skip(f"real clips not found at {CLIPS}")
    video = read_video(path, max_frames=frames * step).frames
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in video[::step]])


@pytest.fixture(scope="session")
def dog_frames():
    return _clip("dog_play.mp4")


@pytest.fixture(scope="session")
def cups_frames():
    return _clip("red_cups.mp4")


@pytest.fixture(scope="session")
def suite():
    """Random-weight evaluators (deterministic under the seed); grounding runs at a small size for speed."""
    from components.evaluate.evaluators import EvaluatorConfig, EvaluatorSuite

    return EvaluatorSuite(EvaluatorConfig(grounding_short_side=48, grounding_max_side=96, device="cpu"))


def _rgba_crop(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    crop = frame[y0:y1, x0:x1]
    alpha = np.zeros(crop.shape[:2], np.uint8)
    cv2.ellipse(
        alpha,
        (crop.shape[1] // 2, crop.shape[0] // 2),
        (crop.shape[1] // 2, crop.shape[0] // 2),
        0,
        0,
        360,
        255,
        -1,
    )
    return np.dstack([crop, alpha])


def _face_frames() -> np.ndarray:
    from skimage import data

    face = data.astronaut()[0:220, 120:300]  # the astronaut's head and shoulders
    return np.stack([np.roll(face, 2 * t, axis=1) for t in range(6)])


def _published(root: Path, dog: np.ndarray) -> Path:
    """Two sample folders in the published layout: a one-subject dog clip and a face clip."""
    data = root / "msrvtt_personalization_data"
    faces = _face_frames()
    for name, frames, tags in (
        (
            "video1",
            dog,
            {"subject": ["dog"], "object": ["leash"], "background": ["path"], "subject_with_face": []},
        ),
        (
            "video2",
            faces,
            {"subject": ["woman"], "object": [], "background": ["room"], "subject_with_face": ["woman"]},
        ),
    ):
        folder = data / name
        folder.mkdir(parents=True)
        write_mp4(frames, folder / "video.mp4", fps=8)
        for i, t in enumerate((0, len(frames) // 2, len(frames) - 1)):
            cv2.imwrite(str(folder / f"frame{i + 1}.jpg"), cv2.cvtColor(frames[t], cv2.COLOR_RGB2BGR))
            h, w = frames.shape[1:3]
            for word in tags["subject"] + tags["object"]:
                crop = _rgba_crop(frames[t], (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
                cv2.imwrite(str(folder / f"{word}.frame{i + 1}.png"), cv2.cvtColor(crop, cv2.COLOR_RGBA2BGRA))
            for word in tags["subject_with_face"]:
                crop = _rgba_crop(frames[t], (40, 20, 140, 140))
                cv2.imwrite(
                    str(folder / f"{word}.face.frame{i + 1}.png"), cv2.cvtColor(crop, cv2.COLOR_RGBA2BGRA)
                )
        cv2.imwrite(str(folder / "background.jpg"), cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR))
        (folder / "summary_text.txt").write_text(f"a {tags['subject'][0]} in a scene")
        (folder / "word_tags.json").write_text(json.dumps(tags))
    return root


@pytest.fixture(scope="session")
def face_frames() -> np.ndarray:
    return _face_frames()


@pytest.fixture
def make_published():
    """Builder of a published-layout benchmark folder (`root`, dog frames) -> root."""
    return _published
