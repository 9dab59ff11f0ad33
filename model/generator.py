"""Text + references -> video, the inference API used by evaluation, serving and the CLI."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model.alchemist import VideoAlchemist
from model.batch import EntityReference
from model.dit import stack_conditioning
from model.flow import add_noise, guided_velocity, predicted_x0
from model.images import to_rgb8
from model.sampler import StepCache, sample

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
        image = to_rgb8(image, name)  # every PNG mode in its true tones (16-bit included)
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
    return torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float() / 255.0


def fit_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 3, size, size): padded to a square with its corner colour, then resized.

    Padding instead of stretching keeps a crop's proportions; training and inference both prepare
    references here, so the image encoder sees the same geometry in both."""
    h, w = image.shape[-2:]
    side = max(h, w)
    if h != w:
        canvas = image[..., :1, :1].expand(*image.shape[:-2], side, side).clone()
        top, left = (side - h) // 2, (side - w) // 2
        canvas[..., top : top + h, left : left + w] = image
        image = canvas
    if side == size:
        return image
    return torch.nn.functional.interpolate(image, size=(size, size), mode="bilinear", antialias=True)


def stack_images(images: Sequence[ImageLike], name: str, size: int) -> torch.Tensor:
    return torch.cat([fit_square(image_to_tensor(img, f"{name}[{i}]"), size) for i, img in enumerate(images)])


@dataclass
class GenerationRequest:
    """What differs between requests that can share one batched solve."""

    prompt: str
    references: dict[str, Sequence[ImageLike]] | None = None
    background: ImageLike | None = None
    seed: int = 0
    source_video: np.ndarray | None = None  # uint8 (T, H, W, 3): its layout is kept below strength 1


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

    def references_to_entities(self, references: dict[str, Sequence[ImageLike]]) -> list[EntityReference]:
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
            tensor = stack_images(images, f"references[{word!r}]", self.config.image.image_size)
            entities.append(EntityReference(word, tensor.to(self.device)))
        return entities

    def model_inputs(
        self, requests: Sequence[GenerationRequest]
    ) -> tuple[list[str], list[list[EntityReference]], list[torch.Tensor | None]]:
        """Checked prompts, entity references and backgrounds of the requests, as `model.condition` takes them."""
        for request in requests:
            if not isinstance(request.prompt, str) or not request.prompt.strip():
                raise ValueError("prompt must be a non-empty string")
        size = self.config.image.image_size
        return (
            [r.prompt for r in requests],
            [self.references_to_entities(r.references or {}) for r in requests],
            [
                None
                if r.background is None
                else stack_images([r.background], "background", size).to(self.device)
                for r in requests
            ],
        )

    def source_latents(self, video: np.ndarray | None, frames: int, height: int, width: int) -> torch.Tensor:
        """A uint8 (T, H, W, 3) clip of the output's size -> its latents (C, t, h, w)."""
        if (
            not isinstance(video, np.ndarray)
            or video.dtype != np.uint8
            or video.ndim != 4
            or video.shape[-1] != 3
        ):
            raise ValueError("source_video must be a uint8 numpy array (T, H, W, 3)")
        if video.shape[:3] != (frames, height, width):
            raise ValueError(
                f"source_video is {video.shape[0]}x{video.shape[1]}x{video.shape[2]} (T x H x W); "
                f"expected the output size {frames}x{height}x{width}"
            )
        pixels = torch.from_numpy(video).permute(3, 0, 1, 2)[None].float().to(self.device) / 127.5 - 1.0
        return self.model.vae.encode(pixels)[0]

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
        source_video: np.ndarray | None = None,
        strength: float = 1.0,
        step_cache: StepCache | None = None,
    ) -> np.ndarray:
        """Returns a uint8 video (T, H, W, 3). guidance = 1 disables classifier-free guidance;
        `reference_guidance` guides the references separately from the text. With a `source_video` and
        `strength` < 1 the solve starts from that clip noised to t = strength, so its layout and motion stay
        and the prompt and references repaint what is there (1 ignores the source). A `step_cache` skips the
        block stack on steps whose input barely moved: faster, and no longer the exact video (None: off)."""
        request = GenerationRequest(prompt, references, background, seed, source_video)
        settings = dict(
            frames=frames, height=height, width=width, steps=steps, guidance=guidance, strength=strength
        )
        return self.generate_batch(
            [request],
            reference_guidance=reference_guidance,
            progress=progress,
            step_cache=step_cache,
            **settings,
        )[0]

    @torch.inference_mode()
    def generate_batch(
        self,
        requests: Sequence[GenerationRequest],
        frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        steps: int = 20,
        guidance: float = 4.0,
        reference_guidance: float | None = None,
        progress: Callable[[int, int], None] | None = None,
        strength: float = 1.0,
        step_cache: StepCache | None = None,
    ) -> list[np.ndarray]:
        """Sample several requests that share size, steps and guidance in one batched ODE solve.
        Each request keeps its own prompt, references and seed, and gets the video it would get alone, except
        under a `step_cache`: it skips a step for the whole batch, so batched requests then share its choices."""
        if not requests:
            raise ValueError("requests must hold at least one GenerationRequest")
        if not 1 <= steps <= MAX_STEPS:
            raise ValueError(f"steps={steps} must be in 1..{MAX_STEPS}")
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength={strength} must be in (0, 1]")
        if strength < 1.0 and any(r.source_video is None for r in requests):
            raise ValueError(f"strength={strength} < 1 needs a source_video in every request")
        video_cfg = self.config.video
        frames, height, width = (
            frames or video_cfg.frames,
            height or video_cfg.height,
            width or video_cfg.width,
        )
        self.config.check_video_size(frames, height, width)
        prompts, entities, backgrounds = self.model_inputs(requests)

        model, batch = self.model, len(requests)
        yes, no = torch.ones(batch, dtype=torch.bool), torch.zeros(batch, dtype=torch.bool)
        # The encoders run once; every guidance branch is the same encoding with parts dropped.
        encoded = model.encode_conditioning(prompts, entities, backgrounds, model.uses_personalization)
        full = model.condition_from(encoded)
        guided = guidance != 1.0
        null = model.condition_from(encoded, yes, yes) if guided else None
        text_only = (
            model.condition_from(encoded, no, yes) if guided and reference_guidance is not None else None
        )

        # The guidance passes run as one batch, and every cross-attention's keys and values are projected once.
        branches = [c for c in (full, text_only, null) if c is not None]
        context = model.dit.cross_context(stack_conditioning(branches))

        def velocity_fn(x: torch.Tensor, t: float, self_condition: torch.Tensor | None):
            n = len(branches)
            tt = torch.full((batch,), t, device=self.device)
            repeat = None if self_condition is None else self_condition.repeat(n, 1, 1, 1, 1)
            v_full, *rest = model.dit(
                x.repeat(n, 1, 1, 1, 1), tt.repeat(n), context, repeat, step_cache
            ).chunk(n)
            v_text = rest.pop(0) if text_only is not None else None
            v_null = rest.pop(0) if null is not None else None
            velocity = guided_velocity(v_full, v_text, v_null, guidance, reference_guidance)
            return velocity, predicted_x0(x, v_full, tt)

        shape = self.config.latent_shape(frames, height, width)
        noise = torch.stack(
            [torch.randn(shape, generator=torch.Generator().manual_seed(r.seed)) for r in requests]
        ).to(self.device)
        if strength < 1.0:
            sources = torch.stack(
                [self.source_latents(r.source_video, frames, height, width) for r in requests]
            )
            noise = add_noise(sources, noise, torch.full((batch,), strength, device=self.device))
        latents = sample(
            velocity_fn,
            noise,
            steps,
            self.config.flow.sampler,
            self.config.flow.shift,
            self.config.flow.time_grid,
            progress,
            start=strength,
        )
        if step_cache is not None:
            step_cache.release()
        videos = model.vae.decode(latents).clamp(-1, 1)  # (B, 3, T, H, W)
        frames_uint8 = ((videos.permute(0, 2, 3, 4, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
        return list(frames_uint8)
