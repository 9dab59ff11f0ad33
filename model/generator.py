"""Text + references -> video, the inference API used by evaluation, serving and the CLI."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model.alchemist import VideoAlchemist
from model.batch import EntityReference
from model.flow import guided_velocity, predicted_x0
from model.sampler import sample

ImageLike = np.ndarray | Image.Image
MAX_REFERENCE_PIXELS = 4096 * 4096  # larger images are refused, not resized: they are usually mistakes
MAX_STEPS = 1000


def image_to_tensor(image: ImageLike, name: str) -> torch.Tensor:
    """uint8 H x W x 3 array or PIL image -> (1, 3, H, W) float in [0, 1]."""
    if isinstance(image, Image.Image):
        if image.width * image.height > MAX_REFERENCE_PIXELS:
            raise ValueError(
                f"{name} has {image.width}x{image.height} pixels; at most {MAX_REFERENCE_PIXELS}"
            )
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a uint8 numpy array or a PIL image; got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be uint8 (H, W, 3); got {image.dtype} {image.shape}")
    if image.shape[0] * image.shape[1] > MAX_REFERENCE_PIXELS:
        raise ValueError(
            f"{name} has {image.shape[1]}x{image.shape[0]} pixels; at most {MAX_REFERENCE_PIXELS}"
        )
    if min(image.shape[:2]) < 1:
        raise ValueError(f"{name} is empty: {image.shape}")
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0


def stack_images(images: Sequence[ImageLike], name: str, size: int) -> torch.Tensor:
    tensors = [image_to_tensor(img, f"{name}[{i}]") for i, img in enumerate(images)]
    return torch.cat(
        [
            torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", antialias=True)
            for t in tensors
        ]
    )


class Generator:
    def __init__(self, model: VideoAlchemist, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = model.config

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: str | torch.device = "cpu",
        locate: Callable[[str], str] | None = None,
    ) -> Generator:
        return cls(VideoAlchemist.from_pretrained(directory, map_location=device, locate=locate), device)

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, ...]:
        vae = self.config.vae
        latent_frames = (
            1 + (frames - 1) // vae.temporal_factor if vae.causal else frames // vae.temporal_factor
        )
        return (
            1,
            vae.latent_channels,
            latent_frames,
            height // vae.spatial_factor,
            width // vae.spatial_factor,
        )

    def references_to_entities(
        self, prompt: str, references: dict[str, Sequence[ImageLike]]
    ) -> list[EntityReference]:
        limits = self.config.video
        if len(references) > limits.max_entities:
            raise ValueError(f"{len(references)} entities given; at most {limits.max_entities}")
        entities = []
        for word, images in references.items():
            if isinstance(images, (np.ndarray, Image.Image)):
                images = [images]
            if not 1 <= len(images) <= limits.max_references:
                raise ValueError(
                    f"entity {word!r} has {len(images)} images; expected 1..{limits.max_references}"
                )
            entities.append(
                EntityReference(
                    word,
                    stack_images(images, f"references[{word!r}]", self.config.image.image_size).to(
                        self.device
                    ),
                )
            )
        return entities

    @torch.no_grad()
    def generate(
        self,
        prompt: str,
        references: dict[str, Sequence[ImageLike]] | None = None,
        background: ImageLike | None = None,
        frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        steps: int = 20,
        guidance: float = 4.0,
        seed: int = 0,
        reference_guidance: float | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Returns a uint8 video (T, H, W, 3). guidance = 1 disables classifier-free guidance;
        `reference_guidance` guides the references separately from the text."""
        if not prompt or not prompt.strip():
            raise ValueError("prompt must be a non-empty string")
        if not 1 <= steps <= MAX_STEPS:
            raise ValueError(f"steps={steps} must be in 1..{MAX_STEPS}")
        video_cfg = self.config.video
        frames, height, width = (
            frames or video_cfg.frames,
            height or video_cfg.height,
            width or video_cfg.width,
        )
        self.config.check_video_size(frames, height, width)
        entities = self.references_to_entities(prompt, references or {})
        bg = None
        if background is not None:
            bg = stack_images([background], "background", self.config.image.image_size).to(self.device)

        model = self.model
        full = model.condition([prompt], [entities], [bg])
        guided = guidance != 1.0
        null = (
            model.condition([prompt], [entities], [bg], torch.tensor([True]), torch.tensor([True]))
            if guided
            else None
        )
        text_only = (
            model.condition([prompt], [entities], [bg], torch.tensor([False]), torch.tensor([True]))
            if guided and reference_guidance is not None
            else None
        )

        def velocity_fn(x: torch.Tensor, t: float, self_condition: torch.Tensor | None):
            tt = torch.full((1,), t, device=self.device)
            v_full = model.dit(x, tt, full, self_condition)
            v_null = model.dit(x, tt, null, self_condition) if null is not None else None
            v_text = model.dit(x, tt, text_only, self_condition) if text_only is not None else None
            velocity = guided_velocity(v_full, v_text, v_null, guidance, reference_guidance)
            return velocity, predicted_x0(x, v_full, tt)

        noise = torch.randn(
            self.latent_shape(frames, height, width), generator=torch.Generator().manual_seed(seed)
        )
        latents = sample(
            velocity_fn,
            noise.to(self.device),
            steps,
            self.config.flow.sampler,
            self.config.flow.shift,
            progress,
        )
        video = model.vae.decode(latents)[0].clamp(-1, 1)  # (3, T, H, W)
        return ((video.permute(1, 2, 3, 0) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
