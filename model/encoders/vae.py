"""The latent space the DiT denoises.

`PixelLatent` is weight-free and exactly invertible (space-to-depth), so tiny runs need no autoencoder.
`DiffusersVAE` wraps a diffusers video autoencoder (AutoencoderKLWan) or an image autoencoder
(AutoencoderKL, applied per frame) loaded from a folder, with its latent normalisation.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, AutoencoderKLWan

from model.config import VAEConfig
from model.encoders.frozen import FrozenEncoder


class PixelLatent(FrozenEncoder):
    random_weights = False  # nothing to learn, nothing random

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.s, self.tf = config.spatial_factor, config.temporal_factor

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> (B, 3*tf*s*s, T/tf, H/s, W/s)."""
        b, c, t, h, w = video.shape
        x = video.reshape(b, c, t // self.tf, self.tf, h // self.s, self.s, w // self.s, self.s)
        return x.permute(0, 1, 3, 5, 7, 2, 4, 6).reshape(
            b, c * self.tf * self.s * self.s, t // self.tf, h // self.s, w // self.s
        )

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = latents.shape
        x = latents.reshape(b, 3, self.tf, self.s, self.s, t, h, w)
        return x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, 3, t * self.tf, h * self.s, w * self.s)


class DiffusersVAE(FrozenEncoder):
    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        if config.path is None:
            raise ValueError("vae.kind='diffusers' needs vae.path: a folder saved with save_pretrained")
        folder = Path(config.path)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"vae folder {config.path!r} has no config.json")
        class_name = AutoencoderKLWan.load_config(str(folder)).get("_class_name", "AutoencoderKL")
        self.video_native = class_name == "AutoencoderKLWan"
        self.model = (AutoencoderKLWan if self.video_native else AutoencoderKL).from_pretrained(str(folder))
        self.random_weights = False
        self.freeze()

    def normalization(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.model.config
        if self.video_native:
            shape = (1, -1, 1, 1, 1)
            return torch.tensor(cfg.latents_mean).view(shape).to(like), torch.tensor(cfg.latents_std).view(
                shape
            ).to(like)
        shift = getattr(cfg, "shift_factor", None) or 0.0
        return torch.full((), shift).to(like), torch.full((), 1.0 / cfg.scaling_factor).to(like)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        if self.video_native:
            latents = self.model.encode(video).latent_dist.mode()
        else:  # an image autoencoder: fold time into the batch
            b, _, t = video.shape[:3]
            frames = video.transpose(1, 2).flatten(0, 1)
            latents = self.model.encode(frames).latent_dist.mode().unflatten(0, (b, t)).transpose(1, 2)
        mean, std = self.normalization(latents)
        return (latents - mean) / std

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        mean, std = self.normalization(latents)
        latents = latents * std + mean
        if self.video_native:
            return self.model.decode(latents).sample
        b, _, t = latents.shape[:3]
        frames = self.model.decode(latents.transpose(1, 2).flatten(0, 1)).sample
        return frames.unflatten(0, (b, t)).transpose(1, 2)


def build_vae(config: VAEConfig) -> PixelLatent | DiffusersVAE:
    return PixelLatent(config) if config.kind == "pixel" else DiffusersVAE(config)
