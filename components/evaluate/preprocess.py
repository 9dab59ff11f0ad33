"""Pixel preprocessing of the public MSRVTT-Personalization evaluation code, on numpy arrays.

Each function reproduces one transform of the reference code (torchvision on PIL images) with PIL and
numpy only, so results match without torchvision: PIL resizes are what torchvision's `Resize` calls
on PIL inputs, and the crop offsets round the way `TF.center_crop` does.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WHITE = 255


def _check_rgb(image: np.ndarray, name: str = "image") -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"{name} must be uint8 [H, W, 3|4], got dtype={image.dtype} shape={image.shape}")


def center_crop_square(image: np.ndarray) -> np.ndarray:
    """Largest centred square (short side), rounding offsets like `torchvision.transforms.functional.center_crop`."""
    height, width = image.shape[:2]
    side = min(height, width)
    top = int(round((height - side) / 2.0))
    left = int(round((width - side) / 2.0))
    return image[top : top + side, left : left + side]


def pad_square_white(image: np.ndarray) -> np.ndarray:
    """Pad to a square on white, pasting at ((long - short) // 2) like the reference `Image.paste` call."""
    height, width = image.shape[:2]
    if height == width:
        return image
    side = max(height, width)
    out = np.full((side, side, image.shape[2]), WHITE, dtype=image.dtype)
    if width > height:
        top = (width - height) // 2
        out[top : top + height] = image
    else:
        left = (height - width) // 2
        out[:, left : left + width] = image
    return out


def alpha_to_white(image: np.ndarray) -> np.ndarray:
    """RGBA -> RGB with fully transparent pixels set to white (`add_white_background`); RGB passes through."""
    _check_rgb(image)
    if image.shape[2] == 3:
        return image
    out = image.copy()
    out[image[:, :, 3] == 0] = WHITE
    return out[:, :, :3]


def mask_onto_white(crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Keep pixels under `mask`, white elsewhere: `mask * crop + (1 - mask) * 255` of the reference code."""
    if mask.shape != crop.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} must equal the crop's {crop.shape[:2]}")
    m = mask.astype(bool)[..., None]
    return np.where(m, crop, np.uint8(WHITE)).astype(np.uint8)


def resize_bicubic(image: np.ndarray, size: int = 224) -> np.ndarray:
    """Square bicubic resize (torchvision `Resize((s, s), BICUBIC)` on a PIL image is PIL's bicubic)."""
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


def normalize(image: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 HWC -> float CHW, `ToTensor` then `Normalize`."""
    x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float() / 255.0
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def clip_frame(frame: np.ndarray, size: int = 224) -> torch.Tensor:
    """Generated/ground-truth frame for CLIP: centre square crop, bicubic resize, CLIP normalisation."""
    _check_rgb(frame, "frame")
    return normalize(resize_bicubic(center_crop_square(frame[:, :, :3]), size), CLIP_MEAN, CLIP_STD)


def clip_frames(frames: np.ndarray, size: int = 224) -> torch.Tensor:
    """[T, H, W, 3] uint8 -> [T, 3, size, size] CLIP inputs."""
    return torch.stack([clip_frame(f, size) for f in frames])


def dino_reference(image: np.ndarray, size: int = 224) -> torch.Tensor:
    """Reference subject image: transparency to white, pad square on white, bicubic resize, ImageNet norm."""
    return normalize(
        resize_bicubic(pad_square_white(alpha_to_white(image)), size), IMAGENET_MEAN, IMAGENET_STD
    )


def dino_subject_crop(
    frame: np.ndarray, box_xyxy: tuple[int, int, int, int], mask: np.ndarray, size: int = 224
) -> torch.Tensor:
    """Detected subject in a generated frame: box crop, mask onto white, pad square, resize, ImageNet norm.

    `mask` is already cropped to the box (as in `load_subject_image_dino`). A zero-area box gives an empty
    crop, which the reference pads into a white square and embeds like any other crop: so does this.
    """
    x0, y0, x1, y1 = box_xyxy
    crop = frame[y0:y1, x0:x1, :3]
    if crop.size == 0:
        white = np.full((size, size, 3), WHITE, dtype=np.uint8)  # any white square resizes to this one
        return normalize(white, IMAGENET_MEAN, IMAGENET_STD)
    return normalize(
        resize_bicubic(pad_square_white(mask_onto_white(crop, mask)), size), IMAGENET_MEAN, IMAGENET_STD
    )


def arcface_crop(image: np.ndarray) -> torch.Tensor:
    """Face crop for ArcFace: cv2 bilinear resize to 112x112, then (x / 255 - 0.5) / 0.5."""
    import cv2

    resized = cv2.resize(np.ascontiguousarray(image[:, :, :3]), (112, 112))
    x = torch.from_numpy(resized).permute(2, 0, 1).float()
    return x.div_(255).sub_(0.5).div_(0.5)
