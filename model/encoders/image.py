"""Reference-image encoder: DINOv2 (identity-preserving, the paper's choice) or CLIP vision (the ablation).

Each image gives l = 1 + token_grid^2 tokens: the class token plus the patch tokens average-pooled to a
token_grid x token_grid grid, so the personalization context stays short whatever the encoder resolution.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModel, Dinov2Config, Dinov2Model

from model.config import ImageEncoderConfig
from model.encoders.frozen import FrozenEncoder

NORMALIZATION = {
    "dinov2": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
}


class ImageEncoder(FrozenEncoder):
    def __init__(self, config: ImageEncoderConfig) -> None:
        super().__init__()
        self.config = config
        if config.path is not None:
            folder = Path(config.path)
            if not folder.is_dir():
                raise FileNotFoundError(f"image encoder folder {config.path!r} does not exist")
            model_class = Dinov2Model if config.kind == "dinov2" else CLIPVisionModel
            self.model = model_class.from_pretrained(str(folder))
            self.random_weights = False
        else:
            self.model = self.build_random(config)
        self.dim = self.model.config.hidden_size
        mean, std = NORMALIZATION[config.kind]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    @staticmethod
    def build_random(config: ImageEncoderConfig) -> torch.nn.Module:
        common = dict(
            hidden_size=config.hidden_size,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            intermediate_size=4 * config.hidden_size,
            image_size=config.image_size,
            patch_size=config.patch_size,
        )
        if config.kind == "dinov2":
            return Dinov2Model(Dinov2Config(**common))
        return CLIPVisionModel(CLIPVisionConfig(**common))

    @torch.no_grad()
    def forward(self, images: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """images (N, 3, h, w) in [0, 1], or a list of such groups of any sizes -> tokens (sum of N, l, D_image).

        Each group is resized to the encoder's resolution here, so a batch's references of every size run in one
        call."""
        groups = [images] if isinstance(images, torch.Tensor) else images
        for group in groups:
            if group.ndim != 4 or group.shape[1] != 3:
                raise ValueError(f"reference images must be (N, 3, h, w); got {tuple(group.shape)}")
        size = self.config.image_size
        x = torch.cat(
            [
                F.interpolate(
                    g.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
                )
                for g in groups
            ]
        )
        x = ((x - self.mean) / self.std).to(next(self.model.parameters()).dtype)
        hidden = self.model(pixel_values=x).last_hidden_state  # (N, 1 + g*g [+ registers], D)
        grid = size // self.config.patch_size
        cls, patches = hidden[:, :1], hidden[:, -grid * grid :]
        patches = patches.transpose(1, 2).unflatten(2, (grid, grid))  # (N, D, g, g)
        pooled = F.adaptive_avg_pool2d(patches, self.config.token_grid).flatten(2).transpose(1, 2)
        return torch.cat([cls, pooled], dim=1)
