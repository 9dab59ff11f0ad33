"""Plan and render one embedded clip: cut-out photos moving over a static texture, with exact visible masks.

Planning draws everything random from one generator, so a (seed, index) pair always gives the same clip.
Rendering pastes with hard (binary) alpha, so each ground-truth mask is exactly the set of pixels that show
that entity in the uncompressed frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from components.embedded.identities import BACKDROPS, IDENTITIES, backdrop_texture, identity_crop


@dataclass(frozen=True)
class EmbeddedConfig:
    """Size and motion of the generated clips.

    Sizes are the square root of the cut-out's box area as a fraction of the frame height, so thin things
    (a rocket) are as prominent as round ones. Subjects are drawn larger than objects (as people and animals
    usually are next to the things they hold), and each clip has at most one subject and one object, so
    captions stay unambiguous.

    `two_entity_prob` is the share of clips with two entities, `cross_prob` the share of those whose entities
    share a band (so one occludes the other), `max_zoom` the relative size change over a clip.

    `pairing` says who shares a clip: "subject+object" (one of each) or "any" (two distinct identities of
    either kind). With "any" and equal size ranges, neither size nor kind tells the two entities apart, which
    is what a binding test needs: only the words can say which reference belongs where.
    """

    num_frames: int = 24
    height: int = 64
    width: int = 64
    fps: float = 8.0
    subject_size: tuple[float, float] = (0.42, 0.52)
    object_size: tuple[float, float] = (0.28, 0.36)
    two_entity_prob: float = 0.65
    cross_prob: float = 0.5
    max_zoom: float = 0.25
    pairing: Literal["subject+object", "any"] = "subject+object"
    backdrops: tuple[str, ...] | None = None  # names in BACKDROPS to draw from; None: all of them
    # Words for the upper and the lower lane's entity instead of each identity's own word ("the bird moves
    # right and the ball moves left across the grass"): the words then say where, only references say how
    # an entity looks. Needs two entities per clip in separate lanes.
    lane_words: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.num_frames < 3:
            raise ValueError(f"num_frames={self.num_frames} must be at least 3")
        unknown = sorted(set(self.backdrops or ()) - set(BACKDROPS))
        if unknown or self.backdrops == ():
            raise ValueError(
                f"backdrops={self.backdrops!r}: expected a non-empty subset of {sorted(BACKDROPS)}"
            )
        if self.pairing not in ("subject+object", "any"):
            raise ValueError(f"pairing={self.pairing!r}; expected 'subject+object' or 'any'")
        if self.lane_words is not None and (
            len(set(self.lane_words)) != 2 or self.two_entity_prob != 1.0 or self.cross_prob != 0.0
        ):
            raise ValueError(
                f"lane_words={self.lane_words!r} needs two distinct words, two_entity_prob=1 and cross_prob=0"
            )
        if self.height % 2 or self.width % 2 or min(self.height, self.width) < 16:
            raise ValueError(f"height={self.height} and width={self.width} must be even and >= 16")


@dataclass(frozen=True)
class EntityPlan:
    """One entity's identity, the word its caption names it by, and its trajectory: centre (x, y) and
    height per frame, in pixels."""

    identity: str
    centers: np.ndarray  # (T, 2)
    heights: np.ndarray  # (T,)
    word: str


@dataclass(frozen=True)
class SamplePlan:
    """Everything needed to render a clip; entities are listed back to front."""

    backdrop: str
    background_box: tuple[int, int, int, int]
    entities: tuple[EntityPlan, ...]
    caption: str


@dataclass
class RenderedSample:
    """Frames (T, H, W, 3) uint8, clean background (H, W, 3), visible masks per identity (T, H, W) bool."""

    frames: np.ndarray
    background: np.ndarray
    masks: dict[str, np.ndarray]


_ONE = ("{a} moves across {bg}", "{a} drifts over {bg}", "{a} slides in front of {bg}")
_TWO = ("{a} and {b} move across {bg}", "{a} passes {b} in front of {bg}", "{a} and {b} cross {bg}")


def plan_sample(rng: np.random.Generator, config: EmbeddedConfig) -> SamplePlan:
    """Draw the cast, paths, sizes, depth order and caption of one clip."""
    subjects = sorted(n for n, i in IDENTITIES.items() if i.kind == "subject")
    objects = sorted(n for n, i in IDENTITIES.items() if i.kind == "object")
    backdrop = str(rng.choice(sorted(config.backdrops or BACKDROPS)))
    if rng.random() < config.two_entity_prob:
        if config.pairing == "any":
            cast = [str(name) for name in rng.choice(subjects + objects, size=2, replace=False)]
        else:
            cast = [str(rng.choice(subjects)), str(rng.choice(objects))]
    else:
        cast = [str(rng.choice(subjects + objects))]
    crossing = len(cast) == 2 and rng.random() < config.cross_prob
    lanes = rng.permutation([0.27, 0.73])
    direction = 1 if rng.random() < 0.5 else -1
    plans, moves = [], []
    for k, name in enumerate(cast):
        low, high = config.subject_size if IDENTITIES[name].kind == "subject" else config.object_size
        crop, _ = identity_crop(name)
        height = min(
            rng.uniform(low, high) * config.height * (crop.shape[0] / crop.shape[1]) ** 0.5,
            0.8 * config.height,
        )
        heights = _zoom(height, rng.uniform(-1, 1) * config.max_zoom, config)
        # Two entities travel in opposite directions: in the same band (crossing) one passes behind the
        # other; in separate bands they pass each other. Moving in lockstep would make them one blob.
        flip = -direction if k == 1 else direction
        lane = 0.5 if crossing else (float(lanes[k]) if len(cast) == 2 else rng.uniform(0.35, 0.65))
        word = IDENTITIES[name].word
        if config.lane_words is not None:
            word = config.lane_words[0 if lane < 0.5 else 1]
            moves.append((lane, f"the {word} moves {'right' if flip > 0 else 'left'}"))
        plans.append(EntityPlan(name, _path(rng, config, name, heights, lane, flip), heights, word))
    order = rng.permutation(len(plans))
    texture = backdrop_texture(backdrop)
    side = int(min(texture.shape[:2]) * rng.uniform(0.5, 0.9))
    x0 = int(rng.integers(0, texture.shape[1] - side + 1))
    y0 = int(rng.integers(0, texture.shape[0] - side + 1))
    words = [plan.word for plan in plans]
    template = str(rng.choice(_TWO if len(cast) == 2 else _ONE))
    caption = template.format(a=_article(words[0]), b=_article(words[-1]), bg=BACKDROPS[backdrop].phrase)
    if moves:  # upper lane first, each with its direction: the text lays out the scene
        caption = f"{' and '.join(m for _, m in sorted(moves))} across {BACKDROPS[backdrop].phrase}"
    return SamplePlan(backdrop, (x0, y0, x0 + side, y0 + side), tuple(plans[i] for i in order), caption)


def _article(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _zoom(height: float, zoom: float, config: EmbeddedConfig) -> np.ndarray:
    t = np.linspace(-0.5, 0.5, config.num_frames)
    return height * (1.0 + zoom * t)


def _path(
    rng: np.random.Generator,
    config: EmbeddedConfig,
    name: str,
    heights: np.ndarray,
    lane: float,
    direction: int,
) -> np.ndarray:
    """A left-right (or right-left) sweep, straight, wavy or arced, that keeps most of the entity in frame.

    The sweep is long compared with the entity's width, so every background pixel is uncovered in most
    frames: real static-camera footage has the same property, and the miner's background model needs it.
    """
    crop, _ = identity_crop(name)
    aspect = crop.shape[1] / crop.shape[0]
    half_w = 0.5 * float(heights.max()) * aspect
    w, h = config.width, config.height
    start = min(max(half_w * 0.6, 0.12 * w), 0.45 * w)
    end = w - start
    t = np.linspace(0.0, 1.0, config.num_frames)
    xs = start + (end - start) * (t if direction > 0 else 1 - t)
    shape = rng.choice(["straight", "wave", "arc"])
    amplitude = rng.uniform(0.05, 0.12) * h
    if shape == "wave":
        offset = amplitude * np.sin(2 * np.pi * t * rng.uniform(0.7, 1.5) + rng.uniform(0, 2 * np.pi))
    elif shape == "arc":
        offset = amplitude * (4 * t * (1 - t) - 0.5) * rng.choice([-1, 1])
    else:
        offset = np.full_like(t, rng.uniform(-0.5, 0.5) * amplitude)
    ys = np.clip(lane * h + offset, 0.3 * heights, h - 0.3 * heights)
    return np.stack([xs, ys], axis=1)


def render_sample(plan: SamplePlan, config: EmbeddedConfig) -> RenderedSample:
    """Composite the clip; entities later in `plan.entities` are in front."""
    x0, y0, x1, y1 = plan.background_box
    texture = backdrop_texture(plan.backdrop)[y0:y1, x0:x1]
    background = cv2.resize(texture, (config.width, config.height), interpolation=cv2.INTER_AREA)
    frames = np.repeat(background[None], config.num_frames, axis=0)
    masks = {
        e.identity: np.zeros((config.num_frames, config.height, config.width), bool) for e in plan.entities
    }
    for entity in plan.entities:
        crop, crop_mask = identity_crop(entity.identity)
        for t in range(config.num_frames):
            placed = _place(crop, crop_mask, entity.centers[t], entity.heights[t], config)
            if placed is None:
                continue
            rgb, mask = placed
            frames[t][mask] = rgb[mask]
            for other in masks.values():
                other[t] &= ~mask
            masks[entity.identity][t] = mask
    return RenderedSample(frames=frames, background=background, masks=masks)


def _place(
    crop: np.ndarray, crop_mask: np.ndarray, center: np.ndarray, height: float, config: EmbeddedConfig
) -> tuple[np.ndarray, np.ndarray] | None:
    """The crop scaled to `height` and pasted at `center` on an empty canvas: (canvas RGB, canvas mask)."""
    eh = max(2, int(round(height)))
    ew = max(2, int(round(height * crop.shape[1] / crop.shape[0])))
    rgb = cv2.resize(crop, (ew, eh), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(crop_mask.astype(np.float32), (ew, eh), interpolation=cv2.INTER_LINEAR) > 0.5
    left = int(round(center[0] - ew / 2))
    top = int(round(center[1] - eh / 2))
    cx0, cy0 = max(left, 0), max(top, 0)
    cx1, cy1 = min(left + ew, config.width), min(top + eh, config.height)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    canvas = np.zeros((config.height, config.width, 3), np.uint8)
    canvas_mask = np.zeros((config.height, config.width), bool)
    sy, sx = slice(cy0 - top, cy1 - top), slice(cx0 - left, cx1 - left)
    canvas[cy0:cy1, cx0:cx1] = rgb[sy, sx]
    canvas_mask[cy0:cy1, cx0:cx1] = mask[sy, sx]
    return canvas, canvas_mask
