"""Anti copy-paste augmentation of reference images (arXiv 2501.06187, Sec. 3, data augmentation).

References come from other frames than the target clip, but a model can still learn to paste them. Each
transform breaks one shortcut: resolution (downsample + blur), illumination (colour jitter + brightness),
pose (flip, shear, rotation). Images are float32 HxWx3 in [0, 1]; randomness comes only from the
`numpy.random.Generator` passed in, so a seeded sample is augmented identically in any worker process.
"""

from __future__ import annotations

import cv2
import numpy as np

from components.train.config import AugmentConfig


def augment_reference(image: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Apply each enabled transform with its own probability; returns a new float32 HxWx3 array in [0, 1]."""
    out = np.ascontiguousarray(image, dtype=np.float32)
    if rng.random() < cfg.p_resolution:
        out = degrade_resolution(
            out, float(rng.uniform(*cfg.downsample_range)), float(rng.uniform(*cfg.blur_sigma_range))
        )
    if rng.random() < cfg.p_color:
        out = jitter_color(
            out,
            brightness=float(rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)),
            contrast=float(rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)),
            saturation=float(rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)),
            hue_shift=float(rng.uniform(-cfg.hue, cfg.hue)),
        )
    if rng.random() < cfg.p_flip:
        out = np.ascontiguousarray(out[:, ::-1])
    shear = float(rng.uniform(-cfg.shear_degrees, cfg.shear_degrees)) if rng.random() < cfg.p_shear else 0.0
    angle = (
        float(rng.uniform(-cfg.rotate_degrees, cfg.rotate_degrees)) if rng.random() < cfg.p_rotate else 0.0
    )
    if shear or angle:
        out = warp_affine(out, angle_degrees=angle, shear_degrees=shear)
    return np.clip(out, 0.0, 1.0)


def degrade_resolution(image: np.ndarray, scale: float, sigma: float) -> np.ndarray:
    """Downsample by `scale`, blur, and upsample back: detail is lost while the size stays the same."""
    h, w = image.shape[:2]
    small = cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def jitter_color(
    image: np.ndarray, brightness: float, contrast: float, saturation: float, hue_shift: float
) -> np.ndarray:
    """Brightness, contrast and saturation as multiplicative factors, hue as a fraction of the colour circle."""
    out = np.clip(image * brightness, 0.0, 1.0)
    gray = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[..., None]
    out = np.clip((out - gray.mean()) * contrast + gray.mean(), 0.0, 1.0)
    gray = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[..., None]
    out = np.clip((out - gray) * saturation + gray, 0.0, 1.0)
    if hue_shift:
        hsv = cv2.cvtColor(out.astype(np.float32), cv2.COLOR_RGB2HSV)  # float input: H in [0, 360)
        hsv[..., 0] = (hsv[..., 0] + 360.0 * hue_shift) % 360.0
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return out


def warp_affine(image: np.ndarray, angle_degrees: float, shear_degrees: float) -> np.ndarray:
    """Rotate and shear about the centre; uncovered pixels take the corner colour (the mask fill of a crop)."""
    h, w = image.shape[:2]
    cx, cy = w / 2.0, h / 2.0
    rotation = np.vstack([cv2.getRotationMatrix2D((cx, cy), angle_degrees, 1.0), [0.0, 0.0, 1.0]])
    shear = np.array([[1.0, np.tan(np.radians(shear_degrees)), 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    to_origin = np.array([[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]])
    back = np.array([[1.0, 0.0, cx], [0.0, 1.0, cy], [0.0, 0.0, 1.0]])
    matrix = (rotation @ back @ shear @ to_origin)[:2]
    fill = tuple(float(c) for c in image[0, 0])
    return cv2.warpAffine(
        image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=fill
    )
