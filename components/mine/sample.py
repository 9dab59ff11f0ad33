"""Mine one captioned video into one manifest row (media written under `media/<sample_id>/`).

Order: entity words, decode, choose the target clip (middle of the video) and the reference frames (outside
it), segment keyframes + reference frames, check every entity was found, then write the clip, masks,
references and the inpainted background. Any failure raises SampleRejected with the stage and a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from components.media import Video, VideoError, read_video, write_mp4
from components.mine.background import Fill, dilate, inpaint_opencv, inpaint_temporal
from components.mine.config import MinerConfig
from components.mine.entities import EntityExtractionError, EntityExtractor, EntityWord
from components.mine.segment import (
    Detection,
    Detections,
    SegmentationError,
    Segmenter,
    SegmentRequest,
    detection_from_mask,
)
from components.storage import file_sha256


class SampleRejected(Exception):
    """Why a sample is not in the manifest: the stage that refused it and a readable reason."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage, self.reason = stage, reason


@dataclass(frozen=True)
class SampleInput:
    """One (video, caption) pair to mine."""

    sample_id: str
    video_path: Path
    caption: str
    source: str


@dataclass(frozen=True)
class Layout:
    """Frame indices (in the decoded video) of the target clip, its keyframes and the reference candidates."""

    clip: tuple[int, ...]
    keyframes: tuple[int, int, int]
    references: tuple[int, ...]


def plan_frames(num_frames: int, config: MinerConfig) -> Layout:
    """Target clip in the middle of the video; references spread over the frames before and after it."""
    span = (config.clip_frames - 1) * config.frame_stride + 1
    if num_frames <= span:
        raise SampleRejected(
            "video",
            f"video has {num_frames} frames; the clip needs {span} (clip_frames={config.clip_frames}, "
            f"frame_stride={config.frame_stride}) plus frames outside it for references",
        )
    start = (num_frames - span) // 2
    clip = tuple(start + config.frame_stride * k for k in range(config.clip_frames))
    outside = [i for i in range(num_frames) if i < start or i >= start + span]
    count = min(len(outside), 2 * config.references_per_entity)
    picks = np.linspace(0, len(outside) - 1, count).round().astype(int)
    return Layout(
        clip, (clip[0], clip[len(clip) // 2], clip[-1]), tuple(outside[p] for p in np.unique(picks))
    )


def mine_sample(
    item: SampleInput,
    config: MinerConfig,
    extractor: EntityExtractor,
    segmenter: Segmenter,
    out: Path,
    fill: Fill = inpaint_opencv,
) -> dict:
    """The manifest row of `item` (without `split`), with media written under `out`; or SampleRejected.

    `fill` inpaints what the background step cannot take from other frames (OpenCV or a diffusers model).
    """
    if not item.caption.strip():
        raise SampleRejected("caption", "empty caption")
    try:
        words = extractor.extract(item.caption)
    except EntityExtractionError as error:
        raise SampleRejected("entities", str(error)) from error
    foreground = [w for w in words if w.kind != "background"]
    if not foreground:
        raise SampleRejected("entities", f"caption {item.caption!r} names no subject or object")
    try:
        video = read_video(item.video_path, max_side=config.max_side)
    except VideoError as error:
        raise SampleRejected("video", str(error)) from error
    _check_shape(video, item, config)
    frames = video.frames
    layout = plan_frames(len(frames), config)
    indices = tuple(sorted({*layout.keyframes, *layout.references}))
    try:
        detections = segmenter.segment(SegmentRequest(item.video_path, frames, indices, tuple(foreground)))
    except SegmentationError as error:
        raise SampleRejected("segmentation", str(error)) from error
    kept = _check_found(foreground, detections, layout, config)
    media = out / "media" / item.sample_id
    media.mkdir(parents=True, exist_ok=True)
    unions = {i: _union(frames.shape[1:3], [detections[w.word].get(i) for w in kept]) for i in indices}
    holes = {i: dilate(u, config.background_dilation) for i, u in unions.items()}
    entities = []
    for word in words:
        if word.kind == "background":
            entity = _background_entity(word, frames, holes, layout, media, out, config)
            if entity is not None:
                entities.append(entity)
        elif word in kept:
            entities.append(
                _foreground_entity(word, frames, detections[word.word], layout, media, out, config)
            )
    clip_path = media / "clip.mp4"
    fps = (video.fps or 24.0) / config.frame_stride  # 24 fps where the source does not say
    write_mp4(frames[list(layout.clip)], clip_path, fps)
    background_path = media / "background.png"
    _write_png(background_path, _background(frames, holes, layout, config, fill))
    return {
        "sample_id": item.sample_id,
        "source": item.source,
        "caption": item.caption,
        "video_path": _rel(clip_path, out),
        "fps": float(fps),
        "num_frames": len(layout.clip),
        "width": int(frames.shape[2]),
        "height": int(frames.shape[1]),
        "sha256": file_sha256(clip_path),
        "clip_start": layout.clip[0],
        "clip_end": layout.clip[-1] + 1,
        "background_path": _rel(background_path, out),
        "entities": entities,
    }


def _check_shape(video: Video, item: SampleInput, config: MinerConfig) -> None:
    """A sliver of a video (8x2000 becomes a 2x512 clip with 2x3 px boxes) teaches nothing: refuse it here,
    with the reason, rather than let validation find it later."""
    width, height = video.source_size
    aspect = max(width, height) / max(1, min(width, height))
    if aspect > config.max_aspect:
        raise SampleRejected(
            "video",
            f"video {item.video_path} is {width}x{height} (aspect {aspect:.1f}); "
            f"the miner takes at most max_aspect={config.max_aspect}",
        )
    mined_height, mined_width = video.frames.shape[1:3]
    if min(mined_width, mined_height) < config.min_side:
        resized = (
            "" if (mined_width, mined_height) == (width, height) else f", {mined_width}x{mined_height} mined"
        )
        raise SampleRejected(
            "video",
            f"video {item.video_path} is {width}x{height}{resized}; the shorter side must be at least "
            f"min_side={config.min_side} px",
        )


def _check_found(
    words: list[EntityWord], detections: Detections, layout: Layout, config: MinerConfig
) -> list[EntityWord]:
    """Words found in every keyframe and in at least one reference frame; reject or drop the others."""
    problems: dict[str, str] = {}
    for word in words:
        found = detections.get(word.word, {})
        missing = [k for k in layout.keyframes if k not in found or found[k].area <= 0]
        if not found:
            problems[word.word] = f"entity {word.word!r} never found"
        elif missing:
            problems[word.word] = f"zero-area mask for {word.word!r} in keyframe(s) {missing}"
        elif not any(r in found for r in layout.references):
            problems[word.word] = f"no frame outside the clip shows {word.word!r} (no reference)"
    if problems and config.on_missing_entity == "reject":
        raise SampleRejected("segmentation", "; ".join(problems.values()))
    kept = [w for w in words if w.word not in problems]
    if not kept:
        raise SampleRejected("segmentation", "no subject or object found: " + "; ".join(problems.values()))
    return kept


def _foreground_entity(
    word: EntityWord,
    frames: np.ndarray,
    found: dict[int, Detection],
    layout: Layout,
    media: Path,
    out,
    config,
) -> dict:
    slug = _slug(word.word)
    mask_paths = []
    for k, index in enumerate(layout.keyframes):
        path = media / f"{slug}_mask{k}.png"
        _write_mask(path, found[index].mask)
        mask_paths.append(_rel(path, out))
    candidates = sorted((r for r in layout.references if r in found), key=lambda r: -found[r].area)
    reference_paths = []
    for rank, index in enumerate(sorted(candidates[: config.references_per_entity])):
        path = media / f"{slug}_ref{rank}.png"
        _write_png(path, _masked_crop(frames[index], found[index], config.reference_margin))
        reference_paths.append(_rel(path, out))
    keyframes = [found[i] for i in layout.keyframes]
    return _entity(word, reference_paths, mask_paths, keyframes)


def _background_entity(
    word: EntityWord,
    frames: np.ndarray,
    holes: dict[int, np.ndarray],
    layout: Layout,
    media: Path,
    out,
    config,
) -> dict | None:
    """A background word's mask is everything outside the dilated foreground; its references are whole
    frames from outside the clip with the foreground blacked out."""
    keyframes = [detection_from_mask(~holes[i], 1.0) for i in layout.keyframes]
    if any(d is None for d in keyframes):
        return None
    slug = _slug(word.word)
    mask_paths = []
    for k, detection in enumerate(keyframes):
        path = media / f"{slug}_mask{k}.png"
        _write_mask(path, detection.mask)
        mask_paths.append(_rel(path, out))
    references = sorted(layout.references, key=lambda r: holes[r].mean())[: config.references_per_entity]
    reference_paths = []
    for rank, index in enumerate(sorted(references)):
        path = media / f"{slug}_ref{rank}.png"
        image = frames[index].copy()
        image[holes[index]] = 0
        _write_png(path, image)
        reference_paths.append(_rel(path, out))
    return _entity(word, reference_paths, mask_paths, keyframes)


def _entity(word: EntityWord, reference_paths: list[str], mask_paths: list[str], keyframes: list) -> dict:
    return {
        "word": word.word,
        "kind": word.kind,
        "token_start": word.start,
        "token_end": word.end,
        "reference_paths": reference_paths,
        "mask_paths": mask_paths,
        "boxes": [list(d.box) for d in keyframes],
        "scores": [d.score for d in keyframes],
        "areas": [d.area for d in keyframes],
    }


def _background(
    frames: np.ndarray, holes: dict[int, np.ndarray], layout: Layout, config: MinerConfig, fill: Fill
) -> np.ndarray:
    middle = layout.keyframes[1]
    if config.inpaint == "opencv":
        return fill(frames[middle], holes[middle])
    others = [(frames[i], holes[i]) for i in holes if i != middle]
    return inpaint_temporal(frames[middle], holes[middle], others, fill)


def _masked_crop(frame: np.ndarray, detection: Detection, margin: float) -> np.ndarray:
    """The entity's box grown by `margin` of its size, pixels outside its mask set to black."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = detection.box
    pad = margin * max(x1 - x0, y1 - y0)
    x0, y0 = int(max(0, x0 - pad)), int(max(0, y0 - pad))
    x1, y1 = int(min(w, np.ceil(x1 + pad))), int(min(h, np.ceil(y1 + pad)))
    crop = frame[y0:y1, x0:x1].copy()
    crop[~detection.mask[y0:y1, x0:x1]] = 0
    return crop


def _union(shape: tuple[int, int], detections: list[Detection | None]) -> np.ndarray:
    union = np.zeros(shape, bool)
    for detection in detections:
        if detection is not None:
            union |= detection.mask
    return union


def _slug(word: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", word.lower()).strip("-") or "entity"


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _write_png(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise RuntimeError(f"could not write {path}")


def _write_mask(path: Path, mask: np.ndarray) -> None:
    if not cv2.imwrite(str(path), mask.astype(np.uint8) * 255):
        raise RuntimeError(f"could not write {path}")
