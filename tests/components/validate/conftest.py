"""A tiny mined dataset written by hand to the manifest contract: real MP4s and PNGs, three samples."""

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from components.manifest import MANIFEST
from components.media import write_mp4

SIZE = 32  # frame width and height
FRAMES = 4
CAPTION = "a dog chases a ball"
SPLITS = {"s0": "train", "s1": "train", "s2": "val"}


def _write_video(path: Path, seed: int) -> None:
    write_mp4(np.random.default_rng(seed).integers(0, 255, (FRAMES, SIZE, SIZE, 3), dtype=np.uint8), path, 8)


def _png(path: Path, size: tuple[int, int], mode: str = "RGB") -> str:
    Image.new(mode, size, 128).save(path)
    return path.name


def write_dataset(root: Path) -> Path:
    rows = []
    for index, (sample_id, split) in enumerate(SPLITS.items()):
        media = root / "media" / sample_id
        media.mkdir(parents=True)
        _write_video(media / "clip.mp4", index)
        _png(media / "background.png", (SIZE, SIZE))
        entities = []
        for word, kind in (("dog", "subject"), ("ball", "object")):
            start = CAPTION.index(word)
            refs = [f"media/{sample_id}/{_png(media / f'{word}_ref{i}.png', (12, 10))}" for i in range(2)]
            masks = [
                f"media/{sample_id}/{_png(media / f'{word}_mask{k}.png', (SIZE, SIZE), 'L')}"
                for k in range(3)
            ]
            entities.append(
                {
                    "word": word,
                    "kind": kind,
                    "token_start": start,
                    "token_end": start + len(word),
                    "reference_paths": refs,
                    "mask_paths": masks,
                    "boxes": [[2.0, 3.0, 20.0, 30.0]] * 3,
                    "scores": [0.9, 0.8, 0.7],
                    "areas": [0.1, 0.2, 0.3],
                }
            )
        rows.append(
            {
                "sample_id": sample_id,
                "source": f"clips/{sample_id}.mp4",
                "split": split,
                "caption": CAPTION,
                "video_path": f"media/{sample_id}/clip.mp4",
                "fps": 8.0,
                "num_frames": FRAMES,
                "width": SIZE,
                "height": SIZE,
                "sha256": hashlib.sha256((media / "clip.mp4").read_bytes()).hexdigest(),
                "clip_start": 10,
                "clip_end": 10 + FRAMES,
                "background_path": f"media/{sample_id}/background.png",
                "entities": entities,
            }
        )
    write_manifest(root, rows)
    return root


def read_rows(root: Path) -> list[dict]:
    return pq.read_table(root / "manifest.parquet").to_pylist()


def write_manifest(root: Path, rows: list[dict], schema: pa.Schema = MANIFEST) -> None:
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), root / "manifest.parquet")


@pytest.fixture(scope="module")
def valid_dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("dataset") / "embedded")


@pytest.fixture
def variant(valid_dataset, tmp_path):
    """Copy the valid dataset and rewrite its manifest: `variant(edit, schema)` with `edit(rows)` in place."""
    import shutil

    def make(edit, schema: pa.Schema = MANIFEST) -> Path:
        root = tmp_path / "variant"
        shutil.copytree(valid_dataset, root)
        rows = read_rows(root)
        edit(rows, root)
        write_manifest(root, rows, schema)
        return root

    return make


@pytest.fixture
def manifest_schema() -> pa.Schema:
    return MANIFEST
