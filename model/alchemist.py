"""Video Alchemist: frozen encoders, entity binding and the video DiT, trained with rectified flow."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from model.batch import EntityReference, TrainingBatch
from model.binding import EntityBinder, EntityTokens, find_word_span, token_span
from model.config import AlchemistConfig
from model.dit import Conditioning, VideoDiT
from model.encoders.image import ImageEncoder
from model.encoders.text import TextEncoder, TextStates
from model.encoders.vae import build_vae
from model.flow import add_noise, flow_loss, predicted_x0, sample_timesteps, velocity_target

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
ENCODERS = ("text_encoder", "image_encoder", "vae")


def with_local_paths(config: AlchemistConfig, locate: Callable[[str], str]) -> AlchemistConfig:
    """Map every encoder location (for example an s3:// URI) to a local folder before building.

    The model itself only reads local folders; fetching remote weights is the caller's job."""

    def local(path: str | None) -> str | None:
        return None if path is None else locate(path)

    return dataclasses.replace(
        config,
        text=dataclasses.replace(
            config.text, path=local(config.text.path), tokenizer_path=local(config.text.tokenizer_path)
        ),
        image=dataclasses.replace(config.image, path=local(config.image.path)),
        vae=dataclasses.replace(config.vae, path=local(config.vae.path)),
    )


class VideoAlchemist(nn.Module):
    def __init__(self, config: AlchemistConfig) -> None:
        super().__init__()
        self.config = config
        self.text_encoder = TextEncoder(config.text)
        self.image_encoder = ImageEncoder(config.image)
        self.vae = build_vae(config.vae)
        text_dim = self.text_encoder.dim
        if config.dit.text_dim is not None and config.dit.text_dim != text_dim:
            raise ValueError(
                f"the text encoder gives {text_dim}-wide states but dit.text_dim={config.dit.text_dim}: "
                f"point text.path at the encoder the DiT was trained with"
            )
        self.dit = VideoDiT(config.dit, config.vae.latent_channels, text_dim)
        self.rebuild_binder(config.dit.word_binding)
        self.stage = 2

    def rebuild_binder(self, word_binding: bool) -> None:
        """A fresh binder with or without word binding; only valid before personalization is trained."""
        self.config.dit.word_binding = word_binding
        self.binder = EntityBinder(
            self.image_encoder.dim,
            self.text_encoder.dim,
            self.config.text.max_word_tokens,
            self.config.dit.hidden_size,
            bind=word_binding,
        ).to(self.dit.head.weight.device)

    # ----------------------------------------------------------------- bookkeeping
    def random_weight_encoders(self) -> list[str]:
        """Encoders running on random weights: their outputs carry no pretrained knowledge."""
        return [name.removesuffix("_encoder") for name in ENCODERS if getattr(self, name).random_weights]

    def personalization_parameters(self) -> list[nn.Parameter]:
        return [*self.dit.personalization_parameters(), *self.binder.parameters()]

    def set_stage(self, stage: int) -> None:
        """Stage 1 trains with text cross-attention only; stage 2 adds personalization and tunes everything."""
        if stage not in (1, 2):
            raise ValueError(f"stage={stage}; expected 1 or 2")
        self.stage = stage
        for parameter in self.personalization_parameters():
            parameter.requires_grad_(stage == 2)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    @property
    def uses_personalization(self) -> bool:
        return self.stage == 2 and self.config.dit.personalization

    # ----------------------------------------------------------------- conditioning
    def encode_text(self, prompts: list[str]) -> TextStates:
        return self.text_encoder(prompts)

    def entity_tokens(
        self,
        text: TextStates,
        prompts: list[str],
        entities: list[list[EntityReference]],
        backgrounds: list[torch.Tensor | None],
    ) -> list[list[EntityTokens]]:
        """Locate each entity word in its prompt and pair its text tokens with its image tokens.

        All reference images of the batch go through the image encoder in one call."""
        size = self.config.image.image_size
        groups: list[torch.Tensor] = []
        words: list[tuple[int, torch.Tensor | None]] = []
        for i, (prompt, sample, background) in enumerate(zip(prompts, entities, backgrounds)):
            for entity in sample:
                start, end = token_span(text.offsets[i], find_word_span(prompt, entity.word))
                words.append((i, text.states[i, start:end]))
                groups.append(entity.images)
            if background is not None:
                words.append((i, None))
                groups.append(background)
        result: list[list[EntityTokens]] = [[] for _ in prompts]
        if not groups:
            return result
        resized = [
            F.interpolate(g.float(), size=(size, size), mode="bilinear", antialias=True) for g in groups
        ]
        tokens = self.image_encoder(torch.cat(resized)).split(
            [len(g) for g in groups]
        )  # each (k, l, D_image)
        for (i, word_tokens), image_tokens in zip(words, tokens):
            result[i].append(EntityTokens(image_tokens=image_tokens.flatten(0, 1), word_tokens=word_tokens))
        return result

    def condition(
        self,
        prompts: list[str],
        entities: list[list[EntityReference]],
        backgrounds: list[torch.Tensor | None],
        drop_text: torch.Tensor | None = None,
        drop_references: torch.Tensor | None = None,
    ) -> Conditioning:
        """Text and personalization context for the DiT; dropped parts act as the unconditional branch."""
        text = self.encode_text(prompts)
        if drop_text is not None and bool(drop_text.any()):
            shown = self.encode_text(["" if drop else p for p, drop in zip(prompts, drop_text.tolist())])
            states, mask = shown.states, shown.mask
        else:
            states, mask = text.states, text.mask
        if not self.uses_personalization:
            return Conditioning(text=states, text_mask=mask)
        if drop_references is not None:
            keep = [not drop for drop in drop_references.tolist()]
            entities = [sample if k else [] for sample, k in zip(entities, keep)]
            backgrounds = [bg if k else None for bg, k in zip(backgrounds, keep)]
        context, context_mask = self.binder(self.entity_tokens(text, prompts, entities, backgrounds))
        return Conditioning(text=states, text_mask=mask, reference=context, reference_mask=context_mask)

    # ----------------------------------------------------------------- training
    def training_loss(self, batch: TrainingBatch, generator: torch.Generator | None = None) -> torch.Tensor:
        """Rectified-flow loss with classifier-free-guidance dropout and self-conditioning."""
        flow = self.config.flow
        device = batch.video.device
        batch_size = batch.video.shape[0]
        x0 = self.vae.encode(batch.video)

        def uniform() -> torch.Tensor:  # drawn on the CPU so a seed gives the same run on any device
            return torch.rand(batch_size, generator=generator)

        noise = torch.randn(x0.shape, generator=generator).to(device, x0.dtype)
        t = sample_timesteps(batch_size, flow, torch.device("cpu"), generator).to(device)
        drop_text, drop_references = uniform() < flow.text_dropout, uniform() < flow.reference_dropout
        use_self_condition = uniform() < flow.self_conditioning_prob
        x_t = add_noise(x0, noise, t)
        cond = self.condition(batch.prompts, batch.entities, batch.backgrounds, drop_text, drop_references)
        self_condition = None
        if self.config.dit.self_conditioning and bool(use_self_condition.any()):
            with torch.no_grad():
                estimate = predicted_x0(x_t, self.dit(x_t, t, cond), t)
            keep = use_self_condition.to(device).view(-1, 1, 1, 1, 1)
            self_condition = torch.where(keep, estimate, torch.zeros_like(estimate)).detach()
        velocity = self.dit(x_t, t, cond, self_condition)
        return flow_loss(velocity, velocity_target(x0, noise))

    # ----------------------------------------------------------------- persistence
    def saved_state(self) -> dict[str, torch.Tensor]:
        """Everything except encoders loaded from a pretrained folder (those reload from their path)."""
        skip = tuple(f"{name}." for name in ENCODERS if not getattr(self, name).random_weights)
        # clone: tied weights (e.g. T5's shared embedding) must not share storage in safetensors
        return {
            k: v.detach().cpu().clone().contiguous()
            for k, v in self.state_dict().items()
            if not k.startswith(skip)
        }

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "config": self.config.to_dict(),
            "stage": self.stage,
            "random_weights": self.random_weight_encoders(),
        }
        (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        save_file(self.saved_state(), str(directory / WEIGHTS_FILE))
        return directory

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        map_location: str | torch.device = "cpu",
        locate: Callable[[str], str] | None = None,
    ) -> VideoAlchemist:
        """Load a checkpoint; `locate` maps remote encoder locations recorded in its config to local folders."""
        directory = Path(directory)
        if not (directory / CONFIG_FILE).is_file():
            raise FileNotFoundError(
                f"{directory} is not a Video Alchemist checkpoint: {CONFIG_FILE} is missing"
            )
        meta = json.loads((directory / CONFIG_FILE).read_text())
        config = AlchemistConfig.from_dict(meta["config"])
        model = cls(with_local_paths(config, locate) if locate else config)
        model.config = config  # keep the portable locations, so a re-save stays loadable elsewhere
        state = load_file(str(directory / WEIGHTS_FILE), device=str(map_location))
        expected = model.saved_state()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong_shape = [
            f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}"
            for k, v in expected.items()
            if k in state and state[k].shape != v.shape
        ]
        if missing or unexpected or wrong_shape:
            raise ValueError(
                f"checkpoint {directory} does not match its config: {len(missing)} missing "
                f"{missing[:5]}, {len(unexpected)} unexpected {unexpected[:5]}, shape mismatches {wrong_shape[:5]}"
            )
        model.load_state_dict(state, strict=False)
        model.set_stage(meta.get("stage", 2))
        return model.to(map_location)
