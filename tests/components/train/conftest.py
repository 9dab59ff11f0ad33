"""A small mined dataset in the manifest layout, written once per session: real mp4 clips and PNG crops.

Each clip shows a coloured square moving over a plain backdrop; its reference crop is the square itself, so
references carry the information the clip needs. One extra row points at a corrupt mp4 and one at a missing
reference, to exercise skipping.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from components.media import write_mp4

COLOURS = {"cat": (220, 40, 40), "cup": (40, 200, 60), "rocket": (40, 60, 230), "logo": (230, 200, 40)}


def entity(caption: str, word: str, refs: list[str]) -> dict:
    start = caption.index(word)
    return {
        "word": word,
        "kind": "subject",
        "token_start": start,
        "token_end": start + len(word),
        "reference_paths": refs,
        "mask_paths": [],
        "boxes": [],
        "scores": [],
        "areas": [0.1, 0.1, 0.1],
    }


def build_dataset(root: Path, samples: int = 6) -> Path:
    media = root / "media"
    media.mkdir(parents=True)
    rows = []
    words = list(COLOURS)
    for i in range(samples):
        word = words[i % len(words)]
        colour = np.array(COLOURS[word], np.uint8)
        frames = np.full((12, 40, 40, 3), 90, np.uint8)
        for t in range(12):
            x = 2 + 2 * t
            frames[t, 12:28, x : x + 14] = colour
        write_mp4(frames, media / f"s{i}.mp4", fps=8)
        ref = np.zeros((20, 16, 3), np.uint8)
        ref[2:18, 1:15] = colour
        Image.fromarray(ref).save(media / f"s{i}_ref.png")
        Image.fromarray(frames[0] * 0 + 90).save(media / f"s{i}_bg.png")
        caption = f"a {word} moves across the room"
        rows.append(
            {
                "sample_id": f"s{i}",
                "source": "test",
                "split": "train",
                "caption": caption,
                "video_path": f"media/s{i}.mp4",
                "fps": 8.0,
                "num_frames": 12,
                "width": 40,
                "height": 40,
                "sha256": f"sha-s{i}",
                "clip_start": 0,
                "clip_end": 12,
                "background_path": f"media/s{i}_bg.png",
                "entities": [entity(caption, word, [f"media/s{i}_ref.png"])],
            }
        )
    (media / "broken.mp4").write_bytes(b"not a video at all")
    bad_video = dict(rows[0], sample_id="broken-video", video_path="media/broken.mp4", sha256="sha-broken")
    bad_ref = dict(rows[1], sample_id="missing-ref")
    bad_ref["entities"] = [entity(rows[1]["caption"], words[1], ["media/nope.png"])]
    rows += [bad_video, bad_ref]
    pq.write_table(pa.Table.from_pylist(rows), root / "manifest.parquet")
    return root


@pytest.fixture(scope="session")
def mined_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("mined"))
