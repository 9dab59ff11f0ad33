"""The fixed cast of the embedded dataset: real scikit-image photographs cut out as entities, and textures.

Each identity always carries the same word ("cat" is always the chelsea photo), so that the binding of a
caption word to its reference image is learnable from the embedded data alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
from skimage import data as skdata


@dataclass(frozen=True)
class Identity:
    """A foreground entity: the photo it is cut from, its caption word and kind, and its crop box.

    `box` is (x0, y0, x1, y1) as fractions of the photo; the cut-out mask is the ellipse inscribed in it.
    """

    name: str
    word: str
    kind: str
    photo: Callable[[], np.ndarray]
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Backdrop:
    """A background texture, its caption word and the phrase that names it, and the tint of grey textures."""

    name: str
    word: str
    phrase: str
    texture: Callable[[], np.ndarray]
    tint: tuple[int, int, int] | None = None


def _lfw_face() -> np.ndarray:
    face = (skdata.lfw_subset()[1] * 255).astype(np.uint8)
    return cv2.resize(face, (100, 100), interpolation=cv2.INTER_CUBIC)


def _motorcycle() -> np.ndarray:
    return skdata.stereo_motorcycle()[0]


IDENTITIES: dict[str, Identity] = {
    identity.name: identity
    for identity in (
        Identity("chelsea", "cat", "subject", skdata.chelsea, (0.12, 0.0, 0.92, 1.0)),
        Identity("astronaut", "astronaut", "subject", skdata.astronaut, (0.18, 0.0, 0.72, 0.75)),
        Identity("cameraman", "photographer", "subject", skdata.camera, (0.1, 0.08, 0.78, 0.97)),
        Identity("lfw_face", "man", "subject", _lfw_face, (0.05, 0.0, 0.95, 1.0)),
        Identity("coffee", "cup", "object", skdata.coffee, (0.27, 0.0, 0.73, 0.56)),
        Identity("rocket", "rocket", "object", skdata.rocket, (0.52, 0.1, 0.72, 0.98)),
        Identity("motorcycle", "motorcycle", "object", _motorcycle, (0.0, 0.3, 0.95, 1.0)),
        Identity("logo", "logo", "object", skdata.logo, (0.03, 0.03, 0.97, 0.97)),
    )
}

BACKDROPS: dict[str, Backdrop] = {
    backdrop.name: backdrop
    for backdrop in (
        Backdrop("grass", "grass", "the grass", skdata.grass, (90, 170, 60)),
        Backdrop("brick", "wall", "a brick wall", skdata.brick, (200, 110, 80)),
        Backdrop("gravel", "gravel", "the gravel", skdata.gravel, (190, 180, 160)),
        Backdrop("hubble", "space", "deep space", skdata.hubble_deep_field),
    )
}


@cache
def identity_crop(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The cut-out of identity `name`: (H, W, 3) uint8 RGB and its (H, W) bool mask."""
    if name not in IDENTITIES:
        raise ValueError(f"unknown identity {name!r}; expected one of {sorted(IDENTITIES)}")
    identity = IDENTITIES[name]
    rgb = _to_rgb(identity.photo())
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = identity.box
    ys, xs = slice(int(y0 * h), int(y1 * h)), slice(int(x0 * w), int(x1 * w))
    crop = rgb[ys, xs].copy()
    ch, cw = crop.shape[:2]
    mask = np.zeros((ch, cw), np.uint8)
    cv2.ellipse(mask, (cw // 2, ch // 2), (cw // 2 - 1, ch // 2 - 1), 0, 0, 360, 1, -1)
    mask = mask.astype(bool)
    crop[~mask] = 0
    crop.setflags(write=False)
    mask.setflags(write=False)
    return crop, mask


@cache
def backdrop_texture(name: str) -> np.ndarray:
    """The full RGB texture of backdrop `name` (grey textures tinted so backdrops differ in colour)."""
    if name not in BACKDROPS:
        raise ValueError(f"unknown backdrop {name!r}; expected one of {sorted(BACKDROPS)}")
    backdrop = BACKDROPS[name]
    texture = backdrop.texture()
    if texture.ndim == 2 and backdrop.tint is not None:
        tinted = texture[..., None].astype(np.float32) / 255.0 * np.array(backdrop.tint, np.float32) * 1.3
        texture = np.clip(tinted, 0, 255).astype(np.uint8)
    texture = _to_rgb(texture)
    texture.setflags(write=False)
    return texture


def _to_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])
