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

from model.batch import EncodedBatch, EncodedConditioning, EntityReference, TrainingBatch
from model.binding import EntityBinder, EntityTokens, find_word_span, token_span
from model.blocks import fused_projections
from model.config import CONFIG_FILE, AlchemistConfig, checkpoint_meta
from model.dit import Conditioning, VideoDiT
from model.encoders.frozen import UnloadedEncoder
from model.encoders.image import ImageEncoder
from model.encoders.text import TextEncoder, TextStates, resolve_folder
from model.encoders.vae import build_vae
from model.flow import add_noise, flow_loss, predicted_x0, sample_timesteps, velocity_target

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


def write_checkpoint(
    directory: str | Path,
    config: AlchemistConfig,
    stage: int,
    random_weights: list[str],
    state: dict[str, torch.Tensor],
) -> Path:
    """The checkpoint format: config.json (config, stage, random-weight encoders) + model.safetensors."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"config": config.to_dict(), "stage": stage, "random_weights": random_weights}
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
    save_file(state, str(directory / WEIGHTS_FILE))
    return directory


def pretrained_width(path: str, known: int | None = None) -> int:
    """An encoder's output width from its folder's config.json alone (no weights are read)."""
    if known is not None:
        return known
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(resolve_folder(path))).hidden_size


def show_empty_prompt(
    states: torch.Tensor, mask: torch.Tensor, null: torch.Tensor, null_mask: torch.Tensor, drop: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt's states where `drop` is False, the empty prompt's elsewhere, padded to one length."""
    length = max(states.shape[1], null.shape[1])

    def padded(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 0, 0, length - x.shape[1])) if x.ndim == 3 else F.pad(x, (0, length - x.shape[1]))

    where = drop.to(states.device)
    states = torch.where(where[:, None, None], padded(null).to(states.dtype), padded(states))
    mask = torch.where(where[:, None], padded(null_mask), padded(mask))
    return states, mask


def with_image_path(config: AlchemistConfig, locate: Callable[[str], str]) -> AlchemistConfig:
    path = config.image.path
    return dataclasses.replace(config, image=dataclasses.replace(config.image, path=path and locate(path)))


class VideoAlchemist(nn.Module):
    def __init__(self, config: AlchemistConfig, load_encoders: bool = True) -> None:
        """`load_encoders=False` leaves pretrained encoders on disk (training on the encode-once cache)."""
        super().__init__()
        unset = config.unset_locations()
        if unset and load_encoders:
            raise FileNotFoundError(f"encoder locations not set yet: {'; '.join(unset)} (--set FIELD=DIR)")
        self.config = config
        skip = not load_encoders
        self.text_encoder = (
            UnloadedEncoder("text", pretrained_width(config.text.path, config.dit.text_dim))
            if skip and config.text.path
            else TextEncoder(config.text)
        )
        self.image_encoder = (
            UnloadedEncoder("image", pretrained_width(config.image.path))
            if skip and config.image.path
            else ImageEncoder(config.image)
        )
        self.vae = UnloadedEncoder("vae", 0) if skip and config.vae.path else build_vae(config.vae)
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
        tokens = self.image_encoder(groups).split([len(g) for g in groups])  # each (k, l, D_image)
        for (i, word_tokens), image_tokens in zip(words, tokens):
            result[i].append(EntityTokens(image_tokens=image_tokens.flatten(0, 1), word_tokens=word_tokens))
        return result

    def encode_conditioning(
        self,
        prompts: list[str],
        entities: list[list[EntityReference]],
        backgrounds: list[torch.Tensor | None],
        with_references: bool = True,
    ) -> EncodedConditioning:
        """Everything the frozen text and image encoders contribute (what the encode-once cache stores)."""
        text, null = self.encode_text(prompts), self.encode_text([""])
        tokens = (
            self.entity_tokens(text, prompts, entities, backgrounds)
            if with_references
            else [[] for _ in prompts]
        )
        return EncodedConditioning(text.states, text.mask, null.states, null.mask, tokens)

    def condition_from(
        self,
        encoded: EncodedConditioning,
        drop_text: torch.Tensor | None = None,
        drop_references: torch.Tensor | None = None,
    ) -> Conditioning:
        """Text and personalization context for the DiT; dropped parts act as the unconditional branch."""
        states, mask = encoded.text, encoded.text_mask
        if drop_text is not None and bool(drop_text.any()):
            states, mask = show_empty_prompt(states, mask, encoded.null_text, encoded.null_mask, drop_text)
        if not self.uses_personalization:
            return Conditioning(text=states, text_mask=mask)
        entities = encoded.entities
        if drop_references is not None:
            entities = [[] if drop else sample for sample, drop in zip(entities, drop_references.tolist())]
        context, context_mask = self.binder(entities)
        return Conditioning(text=states, text_mask=mask, reference=context, reference_mask=context_mask)

    def condition(
        self,
        prompts: list[str],
        entities: list[list[EntityReference]],
        backgrounds: list[torch.Tensor | None],
        drop_text: torch.Tensor | None = None,
        drop_references: torch.Tensor | None = None,
    ) -> Conditioning:
        encoded = self.encode_conditioning(prompts, entities, backgrounds, self.uses_personalization)
        return self.condition_from(encoded, drop_text, drop_references)

    def encode_batch(self, batch: TrainingBatch, with_references: bool = True) -> EncodedBatch:
        conditioning = self.encode_conditioning(
            batch.prompts, batch.entities, batch.backgrounds, with_references
        )
        return EncodedBatch(self.vae.encode(batch.video), conditioning)

    # ----------------------------------------------------------------- training
    def training_loss(
        self, batch: TrainingBatch | EncodedBatch, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Rectified-flow loss with classifier-free-guidance dropout and self-conditioning.

        A raw batch is encoded here; an encoded one (the encode-once cache) skips the frozen encoders."""
        if isinstance(batch, TrainingBatch):
            batch = self.encode_batch(batch, self.uses_personalization)
        flow = self.config.flow
        x0 = batch.latents
        device, batch_size = x0.device, x0.shape[0]

        def uniform() -> torch.Tensor:  # drawn on the CPU so a seed gives the same run on any device
            return torch.rand(batch_size, generator=generator)

        noise = torch.randn(x0.shape, generator=generator).to(device, x0.dtype)
        t = sample_timesteps(batch_size, flow, torch.device("cpu"), generator).to(device)
        drop_text, drop_references = uniform() < flow.text_dropout, uniform() < flow.reference_dropout
        use_self_condition = uniform() < flow.self_conditioning_prob
        x_t = add_noise(x0, noise, t)
        cond = self.condition_from(batch.conditioning, drop_text, drop_references)
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
        return write_checkpoint(
            directory, self.config, self.stage, self.random_weight_encoders(), self.saved_state()
        )

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        map_location: str | torch.device = "cpu",
        locate: Callable[[str], str] | None = None,
        config: AlchemistConfig | None = None,
        load_encoders: bool = True,
    ) -> VideoAlchemist:
        """Load a checkpoint; `locate` maps remote encoder locations recorded in its config to local folders.

        `config` replaces the saved one (for example other encoder locations or video size); the weights must
        still fit it exactly."""
        directory = Path(directory)
        meta = checkpoint_meta(directory)
        config = config or AlchemistConfig.from_dict(meta["config"])
        built = config
        if locate is not None:  # without its encoders, only the (small) image encoder's config is read
            built = with_local_paths(config, locate) if load_encoders else with_image_path(config, locate)
        model = cls(built, load_encoders)
        model.config = config  # keep the portable locations, so a re-save stays loadable elsewhere
        state = fused_projections(load_file(str(directory / WEIGHTS_FILE), device=str(map_location)))
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
