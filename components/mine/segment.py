"""Grounding + segmentation backends: find each foreground entity word's mask in chosen frames.

A backend returns, per word, the frames where it found the entity; a frame it did not find is simply
absent, and the miner decides what that means (reject or drop).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from components.mine.entities import EntityWord
from model.images import ImageDecodeError, read_rgb8


@dataclass(frozen=True)
class Detection:
    """A boolean mask (H, W), its box (x0, y0, x1, y1) in pixels and a confidence in [0, 1]."""

    mask: np.ndarray
    box: tuple[float, float, float, float]
    score: float

    @property
    def area(self) -> float:
        return float(self.mask.mean())


@dataclass(frozen=True)
class SegmentRequest:
    """The whole decoded video (T, H, W, 3), the frames to segment and the foreground words to find."""

    video_path: Path
    frames: np.ndarray
    frame_indices: tuple[int, ...]
    words: tuple[EntityWord, ...]


Detections = dict[str, dict[int, Detection]]


class SegmentationError(RuntimeError):
    """A backend cannot segment this video at all (e.g. the motion backend on a moving camera)."""


class Segmenter(Protocol):
    """`segment` maps each word to {frame index: Detection} for the frames where it was found."""

    name: str

    def segment(self, request: SegmentRequest) -> Detections: ...


def detection_from_mask(mask: np.ndarray, score: float) -> Detection | None:
    """Wrap a mask with its bounding box; None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    return Detection(mask=mask.astype(bool), box=box, score=float(score))


@dataclass(frozen=True)
class MotionSegmenter:
    """Offline default for static-camera footage: moving regions against a background model.

    A background model built from frames spread across the whole video (see `background_model`) stands for
    the empty scene. Pixels differing from it by more than `threshold` (max over RGB, after a light blur)
    form the foreground; connected components between `min_area` and `max_area` of the frame are candidate
    entities. Without a recognizer the word for each component is a guess: subjects (people, animals) are
    assumed larger than objects, so words sorted subjects first, then in caption order, take components
    sorted by area. This is the heuristic; the grounded-sam backend recognizes words instead. When more than
    `max_foreground` of a frame differs from the model, the camera moved, and the video is refused.
    """

    threshold: float = 20.0
    min_area: float = 0.003
    max_area: float = 0.9
    max_foreground: float = 0.5
    model_frames: int = 32
    stable_tolerance: int = 12
    split_search: int = 8
    merge_ratio: float = 1.35
    vote_full_pixels: int = 128 * 128
    name: str = "motion"

    def segment(self, request: SegmentRequest) -> Detections:
        frames = request.frames
        background = self.background_model(frames)
        order = sorted(range(len(request.words)), key=lambda i: (request.words[i].kind != "subject", i))
        wanted = len(order)
        cache: dict[int, list[tuple[np.ndarray, float]]] = {}

        def components(index: int) -> list[tuple[np.ndarray, float]]:
            if index not in cache:
                cache[index] = self.components(frames[index], background)
            return cache[index]

        for index in request.frame_indices:
            moving = float((self.difference(frames[index], background) > self.threshold).mean())
            if moving > self.max_foreground:
                raise SegmentationError(
                    f"{moving:.0%} of frame {index} differs from the background model (max_foreground="
                    f"{self.max_foreground}): the camera moves, and the motion backend needs a static camera"
                )
        nearby = sorted(
            {i + d for i in request.frame_indices for d in range(-self.split_search, self.split_search + 1)}
            & set(range(len(frames)))
        )
        # Usual component sizes around the requested frames; one entity never needs them (nothing to split).
        sizes = np.array(
            [[m.sum() for m, _ in components(i)[:wanted]] for i in nearby if len(components(i)) >= wanted]
            if wanted > 1
            else []
        )
        typical = np.median(sizes, axis=0) if len(sizes) else np.zeros(wanted)

        def merged(index: int) -> bool:
            """Entities touch or overlap here: fewer components than entities, the largest far above its
            usual size, or another far below its usual size (a stray blob standing in for a hidden entity)."""
            found = components(index)
            if len(found) < wanted:
                return True
            areas = [m.sum() for m, _ in found[:wanted]]
            too_big = wanted > 1 and areas[0] > self.merge_ratio * typical[0]
            return too_big or any(
                a * self.merge_ratio**3 < t for a, t in zip(areas[1:], typical[1:], strict=True)
            )

        result: Detections = {word.word: {} for word in request.words}
        for index in request.frame_indices:
            found = components(index)
            if found and merged(index):
                apart = [i for i in nearby if abs(i - index) <= self.split_search and not merged(i)]
                if apart:
                    neighbour = min(apart, key=lambda i: abs(i - index))
                    found = self._split(
                        frames[index], frames[neighbour], found, components(neighbour)[:wanted]
                    )
            for rank, word_index in enumerate(order[: len(found)]):
                mask, score = found[rank]
                detection = detection_from_mask(mask, score)
                if detection is not None:
                    result[request.words[word_index].word][index] = detection
        return result

    def _split(self, frame, other, found, apart) -> list[tuple[np.ndarray, float]]:
        """Share this frame's foreground among the entities seen apart in a nearby frame.

        Each pixel goes to the entity that best explains it: that entity's colour histogram in the other
        frame, times a prior falling off with the distance to its mask there. Colour decides who is in front
        during an occlusion; distance decides between entities of similar colours.
        """
        union = np.logical_or.reduce([mask for mask, _ in found])
        bins = 8
        codes, other_codes = _colour_codes(frame, bins), _colour_codes(other, bins)
        sigma = max(2.0, 0.05 * max(frame.shape[:2]))
        scores = []
        for mask, _ in apart:
            histogram = np.bincount(other_codes[mask], minlength=bins**3).astype(np.float64)
            histogram = (histogram + 0.5) / (histogram.sum() + 0.5 * bins**3)
            distance = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)
            scores.append(np.log(histogram[codes]) - distance / sigma)
        owner = np.stack(scores).argmax(axis=0)
        score = min(s for _, s in found)
        return [(_largest(union & (owner == k)), score) for k in range(len(apart))]

    def background_model(self, frames: np.ndarray) -> np.ndarray:
        """Per pixel, the colour seen most often over time (within `stable_tolerance`), averaged.

        A static background keeps its colour whenever it is uncovered, while a textured entity sliding over
        the pixel changes it from frame to frame; so the most frequent colour is the background even where an
        entity covers the pixel in most frames, which defeats a plain median.
        """
        picks = np.unique(
            np.linspace(0, len(frames) - 1, min(len(frames), self.model_frames)).round().astype(int)
        )
        stack = frames[picks].astype(np.int16)
        # Large frames vote at half resolution (4x cheaper), then average the agreeing colours at full size.
        step = 2 if stack.shape[1] * stack.shape[2] > self.vote_full_pixels else 1
        small = stack[:, ::step, ::step]
        # Only agreement between frames far apart in time counts: an entity passing over a pixel shows its
        # colours within one short window, the background before and after it.
        gap = max(1, len(small) // 4)
        far = np.abs(np.arange(len(small))[:, None] - np.arange(len(small))[None, :]) >= gap
        counts = np.stack(
            [(far[k][:, None, None] * (np.abs(small - s).max(axis=-1) <= self.stable_tolerance)).sum(0)
             for k, s in enumerate(small)]
        )  # fmt: skip
        winner = (
            counts.argmax(0).repeat(step, axis=0).repeat(step, axis=1)[: stack.shape[1], : stack.shape[2]]
        )
        best = np.take_along_axis(stack, winner[None, ..., None], axis=0)[0]
        close = (np.abs(stack - best).max(axis=-1) <= self.stable_tolerance)[..., None]
        return ((stack * close).sum(0) / np.maximum(close.sum(0), 1)).round().astype(np.uint8)

    def difference(self, frame: np.ndarray, background: np.ndarray) -> np.ndarray:
        """Per-pixel colour difference to the background (max over RGB, after a light blur), uint8."""
        blur = max(3, (min(frame.shape[:2]) // 100) * 2 + 1)
        smooth = cv2.GaussianBlur(frame, (blur, blur), 0)
        return cv2.absdiff(smooth, cv2.GaussianBlur(background, (blur, blur), 0)).max(axis=-1)

    def components(self, frame: np.ndarray, background: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Foreground components of one frame, largest first, each with a score from its contrast."""
        h, w = frame.shape[:2]
        diff = self.difference(frame, background)
        foreground = (diff > self.threshold).astype(np.uint8)
        k = max(3, (min(h, w) // 64) * 2 + 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        foreground = cv2.morphologyEx(foreground, cv2.MORPH_OPEN, kernel)
        foreground = cv2.morphologyEx(foreground, cv2.MORPH_CLOSE, kernel)
        foreground = _fill_holes(foreground)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(foreground, connectivity=8)
        found = []
        for label in range(1, count):
            area = stats[label, cv2.CC_STAT_AREA] / (h * w)
            if self.min_area <= area <= self.max_area:
                mask = labels == label
                score = float(np.clip(diff[mask].mean() / (4 * self.threshold), 0.0, 1.0))
                found.append((mask, score, area))
        found.sort(key=lambda item: -item[2])
        return [(mask, score) for mask, score, _ in found]


def _colour_codes(frame: np.ndarray, bins: int) -> np.ndarray:
    quantized = (frame // (256 // bins)).astype(np.int32)
    return (quantized[..., 0] * bins + quantized[..., 1]) * bins + quantized[..., 2]


def _largest(mask: np.ndarray) -> np.ndarray:
    """The largest connected part of a mask (a split leaves stray pixels on the wrong side)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    return labels == 1 + int(stats[1:, cv2.CC_STAT_AREA].argmax())


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill enclosed holes (a face's uniform cheek matching the background must not punch a hole)."""
    padded = np.pad(mask, 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return (mask.astype(bool) | holes).astype(np.uint8)


@dataclass(frozen=True)
class MaskFolderSegmenter:
    """For datasets that ship masks: `<root>/<video stem>/<word>/<frame:05d>.png` (brighter than half of
    full scale = entity, in any mode the shared decoder reads, 16-bit included).

    Masks of another size are resized to the frame (nearest neighbour); a missing file means not found,
    a file that does not decode refuses the video with the file's name.
    """

    root: Path
    name: str = "masks"

    def segment(self, request: SegmentRequest) -> Detections:
        h, w = request.frames.shape[1:3]
        result: Detections = {}
        for word in request.words:
            found = {}
            for index in request.frame_indices:
                path = Path(self.root) / request.video_path.stem / word.word.lower() / f"{index:05d}.png"
                if not path.is_file():
                    continue
                try:
                    image = read_rgb8(path).max(axis=2)
                except ImageDecodeError as error:
                    raise SegmentationError(f"mask {error}") from error
                if image.shape != (h, w):
                    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_NEAREST)
                detection = detection_from_mask(image > 127, 1.0)
                if detection is not None:
                    found[index] = detection
            result[word.word] = found
        return result
