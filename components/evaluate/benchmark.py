"""The benchmark as data: samples per conditioning mode, in the published layout or our manifest layout.

Modes (each sample's generated video is keyed `"<mode>/<sample_id>"`):
- `face`: one subject with face crops, conditioned on one face crop (Face-S);
- `subject`: exactly one subject, one reference image (the paper's headline table);
- `subject_multi_image`: exactly one subject, all its reference images;
- `multi_subject`: two or more subjects, one reference image each;
- `foreground_background`: exactly one subject with all its images plus the background image.
Subj-S is scored on every subject and object word that has reference images, as the public
embeddings script does; Vid-S compares with the ground-truth frames at 5%, 50% and 95% of the clip.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from components.manifest import read_manifest

MODES = ("face", "subject", "subject_multi_image", "multi_subject", "foreground_background")
GT_FRAME_FRACTIONS = (0.05, 0.50, 0.95)


class BenchmarkError(ValueError):
    """The benchmark folder does not have the expected layout."""


@dataclass
class BenchmarkSample:
    sample_id: str
    mode: str
    prompt: str
    conditioning: dict[str, list[Path]]  # entity word -> images given to the generator
    references: dict[str, list[Path]]  # subject/object word -> images Subj-S compares with
    gt_video: Path | None = None
    gt_frames: list[Path] = field(default_factory=list)  # pre-extracted frames; else taken from gt_video
    background: Path | None = None
    face_word: str | None = None
    face_crops: list[Path] = field(default_factory=list)  # Face-S targets (unmasked crops)
    source: str | None = None  # where the clip came from (manifest `source`)
    source_frames: tuple[int, ...] | None = None  # frame indices of the target clip inside `source`

    @property
    def key(self) -> str:
        return f"{self.mode}/{self.sample_id}"


@dataclass
class Benchmark:
    name: str
    root: Path
    layout: str
    samples: list[BenchmarkSample]

    def modes(self) -> list[str]:
        return [m for m in MODES if any(s.mode == m for s in self.samples)]

    def select(self, modes: list[str] | None = None, limit: int | None = None) -> Benchmark:
        """Keep `modes` (all when None) and at most `limit` samples per mode, in order."""
        unknown = sorted(set(modes or []) - set(MODES))
        if unknown:
            raise BenchmarkError(f"modes {unknown} unknown; expected some of {list(MODES)}")
        kept, counts = [], dict.fromkeys(MODES, 0)
        for s in self.samples:
            if (modes is None or s.mode in modes) and (limit is None or counts[s.mode] < limit):
                kept.append(s)
                counts[s.mode] += 1
        return Benchmark(self.name, self.root, self.layout, kept)


def _file_key(word: str) -> str:
    return word.replace(" ", "_").replace("/", "_")


def load_published(root: str | Path, lists_dir: str | Path | None = None) -> Benchmark:
    """`msrvtt_personalization_data/<video>/` folders (video.mp4, frame1-3.jpg, summary_text.txt,
    word_tags.json, `<word>.frame*.png`, `<word>.face.frame*.png`, background.jpg).

    When `lists_dir` holds the published lists (`subject_mode_videos.txt`, `..._prompts.txt`,
    `..._word_tag_*.txt`, `face_mode_*`), their samples, prompts and conditioning images are used;
    otherwise they are derived from the folders with the same rules (`prepare_conditional_prompts_and_images_list.py`).
    """
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not folders:
        raise BenchmarkError(
            f"{str(root)!r} has no sample folders (expected msrvtt_personalization_data/<video>/)"
        )
    samples: list[BenchmarkSample] = []
    by_name = {f.name: f for f in folders}
    for folder in folders:
        tags_file = folder / "word_tags.json"
        if not tags_file.is_file():
            raise BenchmarkError(f"{str(folder)!r} lacks word_tags.json")
        tags = json.loads(tags_file.read_text())
        prompt = (folder / "summary_text.txt").read_text().strip()
        refs = {
            w: sorted(folder.glob(f"{_file_key(w)}.frame*.png"))
            for w in tags.get("subject", []) + tags.get("object", [])
        }
        refs = {w: p for w, p in refs.items() if p}
        common = dict(
            sample_id=folder.name,
            prompt=prompt,
            references=refs,
            gt_video=folder / "video.mp4" if (folder / "video.mp4").is_file() else None,
            gt_frames=sorted(folder.glob("frame[0-9]*.jpg")),
            background=folder / "background.jpg" if (folder / "background.jpg").is_file() else None,
        )
        subjects = [w for w in tags.get("subject", []) if refs.get(w)]
        if len(tags.get("subject", [])) == 1 and subjects:
            word = subjects[0]
            images = refs[word]
            samples.append(
                BenchmarkSample(mode="subject", conditioning={word: [images[len(images) // 2]]}, **common)
            )
            samples.append(BenchmarkSample(mode="subject_multi_image", conditioning={word: images}, **common))
            if tags.get("background") and common["background"] is not None:
                cond = {word: images, tags["background"][0]: [common["background"]]}
                samples.append(BenchmarkSample(mode="foreground_background", conditioning=cond, **common))
        if len(subjects) >= 2:
            cond = {w: [refs[w][len(refs[w]) // 2]] for w in subjects}
            samples.append(BenchmarkSample(mode="multi_subject", conditioning=cond, **common))
        faces = tags.get("subject_with_face", [])
        if len(faces) == 1:
            crops = sorted(folder.glob(f"{_file_key(faces[0])}.face.frame*.png"))
            if crops:
                samples.append(
                    BenchmarkSample(
                        mode="face",
                        conditioning={faces[0]: [crops[len(crops) // 2]]},
                        face_word=faces[0],
                        face_crops=crops,
                        **common,
                    )
                )
    if lists_dir is not None:
        samples = _apply_lists(Path(lists_dir), samples, by_name)
    return Benchmark("msrvtt-personalization", root, "published", samples)


_LISTS = {
    "subject": ("subject_mode", "single_subject_image"),
    "subject_multi_image": ("subject_mode", "multi_subject_images"),
    "foreground_background": ("subject_mode", "multi_subject_images_with_background"),
    "face": ("face_mode", "single_face_crop"),
}


def _apply_lists(
    lists_dir: Path, samples: list[BenchmarkSample], folders: dict[str, Path]
) -> list[BenchmarkSample]:
    """Replace derived samples of a mode by the published list's samples, prompts and conditioning images."""
    derived = {s.key: s for s in samples}

    def listed(mode: str) -> bool:
        prefix, variant = _LISTS[mode]
        return (lists_dir / f"{prefix}_videos.txt").is_file() and (
            lists_dir / f"{prefix}_word_tag_{variant}.txt"
        ).is_file()

    out = [s for s in samples if s.mode not in _LISTS or not listed(s.mode)]
    for mode, (prefix, variant) in _LISTS.items():
        if not listed(mode):
            continue
        videos_file = lists_dir / f"{prefix}_videos.txt"
        videos = videos_file.read_text().splitlines()
        prompts = (lists_dir / f"{prefix}_prompts.txt").read_text().splitlines()
        conds = (lists_dir / f"{prefix}_word_tag_{variant}.txt").read_text().splitlines()
        if not len(videos) == len(prompts) == len(conds):
            raise BenchmarkError(
                f"{prefix} lists differ in length: videos={len(videos)} prompts={len(prompts)} word_tags={len(conds)}"
            )
        for video, prompt, cond in zip(videos, prompts, conds, strict=True):
            base = derived.get(f"{mode}/{video}")
            if base is None or video not in folders:
                raise BenchmarkError(
                    f"list {prefix} names {video!r}, which has no usable folder for mode {mode}"
                )
            conditioning = {
                w: [folders[video] / Path(p).name for p in ps] for w, ps in ast.literal_eval(cond).items()
            }
            out.append(BenchmarkSample(**{**base.__dict__, "prompt": prompt, "conditioning": conditioning}))
    return out


def load_manifest(root: str | Path, split: str = "test") -> Benchmark:
    """A mined dataset folder (`manifest.parquet`, paths relative to it); samples of `split` only."""
    root = Path(root)
    samples: list[BenchmarkSample] = []
    for row in read_manifest(root, split):
        entities = list(row["entities"])
        refs = {
            e["word"]: [root / p for p in e["reference_paths"]]
            for e in entities
            if e["kind"] in ("subject", "object") and e["reference_paths"]
        }
        background = row.get("background_path")
        common = dict(
            sample_id=str(row["sample_id"]),
            prompt=str(row["caption"]),
            references=refs,
            gt_video=root / row["video_path"],
            source=str(row.get("source") or "") or None,
            source_frames=_clip_indices(row),
            background=root / background if isinstance(background, str) and background else None,
        )
        subjects = [e["word"] for e in entities if e["kind"] == "subject" and e["word"] in refs]
        if len(subjects) == 1:
            images = refs[subjects[0]]
            samples.append(BenchmarkSample(mode="subject", conditioning={subjects[0]: images[:1]}, **common))
            samples.append(
                BenchmarkSample(mode="subject_multi_image", conditioning={subjects[0]: images}, **common)
            )
            backgrounds = [e["word"] for e in entities if e["kind"] == "background"]
            if common["background"] is not None and backgrounds:
                cond = {subjects[0]: images, backgrounds[0]: [common["background"]]}
                samples.append(BenchmarkSample(mode="foreground_background", conditioning=cond, **common))
        elif len(subjects) >= 2:
            cond = {w: refs[w][:1] for w in subjects}
            samples.append(BenchmarkSample(mode="multi_subject", conditioning=cond, **common))
    return Benchmark(root.name, root, "manifest", samples)


def _clip_indices(row: dict[str, Any]) -> tuple[int, ...] | None:
    """Source-frame indices of a mined clip: `num_frames` evenly strided frames in [clip_start, clip_end)."""
    start, end, count = (row.get(k) for k in ("clip_start", "clip_end", "num_frames"))
    if start is None or end is None or not count:
        return None
    return tuple(int(round(x)) for x in np.linspace(int(start), int(end) - 1, int(count)))


def load_benchmark(root: str | Path, layout: str = "auto", split: str = "test") -> Benchmark:
    """`auto` picks `manifest` when manifest.parquet exists, else `published`."""
    root = Path(root)
    if layout == "auto":
        layout = "manifest" if (root / "manifest.parquet").is_file() else "published"
    if layout == "manifest":
        return load_manifest(root, split)
    if layout == "published":
        data = (
            root / "msrvtt_personalization_data" if (root / "msrvtt_personalization_data").is_dir() else root
        )
        return load_published(data, lists_dir=root if data != root else None)
    raise BenchmarkError(f"layout={layout!r} unknown; expected auto, published or manifest")
