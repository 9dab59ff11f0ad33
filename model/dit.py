"""The video diffusion transformer: patchify, timestep conditioning, blocks, unpatchify."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from model.blocks import BiasedContext, DiTBlock, KeysValues, ShortContext, modulate
from model.config import DiTConfig
from model.layers import FP32LayerNorm, timestep_embedding
from model.rope import RotaryEmbedding3D, frame_position_embedding
from model.sampler import StepCache


@dataclass
class Conditioning:
    """Everything the denoiser attends to, already projected to the model width by the caller."""

    text: torch.Tensor  # (B, L_text, D_text) text encoder states
    text_mask: torch.Tensor  # (B, L_text) bool
    reference: torch.Tensor | None = None  # (B, L_ref, D) bound personalization context
    reference_mask: torch.Tensor | None = None  # (B, L_ref) bool


def drop_full_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    return None if mask is None or bool(mask.all()) else mask


@torch.compiler.disable  # its output length depends on the data: compiled graphs take it as an input shape
def collapse_repeated_tail(
    states: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The context with the run of identical rows that ends its valid tokens (Wan's zero padding: 512 tokens
    for a short prompt, every one attended) replaced by one row whose scores carry log(run length). Softmax gives
    n identical keys n times the weight of one, so attention is the same function over far fewer keys, and a
    short prompt becomes a `ShortContext`. Returns the states [B, L', D], their mask (None: all valid) and the
    per-key score bias [B, L'] in fp32, or the input unchanged with no bias when no run is longer than one."""
    batch, length, _ = states.shape
    position = torch.arange(length, device=states.device)
    valid = torch.ones(batch, length, dtype=torch.bool, device=states.device) if mask is None else mask
    lengths = valid.sum(1)
    if not bool((valid == (position < lengths[:, None])).all()):  # valid tokens are not a prefix
        return states, mask, None
    last = states.gather(1, (lengths - 1).clamp_min(0)[:, None, None].expand(-1, 1, states.shape[-1]))
    differs = valid & (states != last).any(-1)
    run = lengths - 1 - torch.where(differs, position, -1).max(1).values  # identical rows ending the prefix
    if int(run.max()) <= 1:
        return states, mask, None
    kept = torch.where(lengths > 0, lengths - run + 1, 0)
    new_length = int(kept.max())
    new_position = position[:new_length]
    bias = torch.where(new_position == (kept - 1)[:, None], run.clamp_min(1).log()[:, None], 0.0)
    new_mask = new_position < kept[:, None]
    return states[:, :new_length], None if bool(new_mask.all()) else new_mask, bias.float()


@dataclass
class CrossContext:
    """Every block's keys and values of the text and the references: they depend on the conditioning alone,
    so a sampler computes them once per generation instead of once per step (`VideoDiT.cross_context`)."""

    text: list[KeysValues | ShortContext]
    text_mask: torch.Tensor | None
    reference: list[KeysValues | ShortContext] | None
    reference_mask: torch.Tensor | None


def stack_conditioning(conditionings: list[Conditioning]) -> Conditioning:
    """Several conditionings as one batch (guidance passes in one forward): contexts padded with masked keys."""

    def stacked(tensors: list[torch.Tensor], masks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        length = max(t.shape[1] for t in tensors)
        padded = [torch.nn.functional.pad(t, (0, 0, 0, length - t.shape[1])) for t in tensors]
        padded_masks = [torch.nn.functional.pad(m, (0, length - m.shape[1])) for m in masks]
        return torch.cat(padded), torch.cat(padded_masks)

    text, text_mask = stacked([c.text for c in conditionings], [c.text_mask for c in conditionings])
    given = [c.reference for c in conditionings if c.reference is not None]
    if not given:
        return Conditioning(text, text_mask)
    references, masks = [], []
    for c in conditionings:
        if c.reference is None:  # attends to one masked zero token, which contributes nothing
            references.append(given[0].new_zeros(len(c.text), 1, given[0].shape[-1]))
            masks.append(torch.zeros(len(c.text), 1, dtype=torch.bool, device=given[0].device))
        else:
            references.append(c.reference)
            masks.append(
                c.reference_mask
                if c.reference_mask is not None
                else torch.ones_like(c.reference[..., 0], dtype=torch.bool)
            )
    reference, reference_mask = stacked(references, masks)
    return Conditioning(text, text_mask, reference, reference_mask)


class VideoDiT(nn.Module):
    """Predicts the rectified-flow velocity of video latents (B, C, T, H, W)."""

    def __init__(self, config: DiTConfig, latent_channels: int, text_dim: int) -> None:
        super().__init__()
        self.config = config
        d, patch = config.hidden_size, config.patch_size
        self.latent_channels = latent_channels
        in_channels = latent_channels * (2 if config.self_conditioning else 1)
        self.patch_embed = nn.Conv3d(in_channels, d, kernel_size=patch, stride=patch)
        self.time_embed = nn.Sequential(nn.Linear(config.time_freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.time_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.text_proj = nn.Sequential(nn.Linear(text_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d))
        self.rope = RotaryEmbedding3D(d // config.num_heads, config.rope_theta)
        ffn_dim = config.ffn_dim or int(d * config.mlp_ratio)
        self.blocks = nn.ModuleList(
            DiTBlock(d, config.num_heads, ffn_dim, config.qk_norm, config.personalization, config.norm_eps)
            for _ in range(config.depth)
        )
        self.final_norm = FP32LayerNorm(d, elementwise_affine=False, eps=config.norm_eps)
        self.final_modulation = nn.Parameter(torch.zeros(1, 2, d))
        self.head = nn.Linear(d, math.prod(patch) * latent_channels)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier for linears, then zero the modulation and the output head (adaLN-zero)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            block.zero_cross_attention_outputs()
        nn.init.zeros_(self.time_modulation[-1].weight)
        nn.init.zeros_(self.time_modulation[-1].bias)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(
        self,
        latents: torch.Tensor,  # (B, C, T, H, W) noisy latents x_t
        t: torch.Tensor,  # (B,) flow time in [0, 1], 1 = pure noise
        cond: Conditioning | CrossContext,  # a CrossContext is the same conditioning, projected once
        self_condition: torch.Tensor | None = None,  # (B, C, T, H, W) previous x0 estimate
        step_cache: StepCache | None = None,  # sampling from a CrossContext: skip the stack on slow steps
    ) -> torch.Tensor:
        if latents.shape[1] != self.latent_channels:
            raise ValueError(f"latents have {latents.shape[1]} channels; expected {self.latent_channels}")
        if self.config.self_conditioning:
            latents = torch.cat(
                [latents, torch.zeros_like(latents) if self_condition is None else self_condition], 1
            )
        x = self.patch_embed(latents)  # (B, D, t, h, w)
        grid = tuple(x.shape[2:])
        x = x.flatten(2).transpose(1, 2)  # (B, L, D)
        if self.config.frame_position:
            x = x + frame_position_embedding(grid, x.shape[-1], x.device).to(x.dtype)
        rope = self.rope(grid, x.device)  # built once per forward, shared by every block
        emb, time_modulation = self.time_conditioning(t)
        context = cond if isinstance(cond, CrossContext) else None
        text_bias = None
        if context is None:
            states, text_mask, text_bias = collapse_repeated_tail(cond.text, cond.text_mask)
            text = self.text_proj(states.to(x.dtype))
            reference = cond.reference.to(x.dtype) if cond.reference is not None else None
            # A mask with every key valid is dropped once here, so each attention call takes the unmasked kernel.
            text_mask, reference_mask = drop_full_mask(text_mask), drop_full_mask(cond.reference_mask)
        else:
            text_mask, reference_mask = context.text_mask, context.reference_mask
        cache = step_cache if context is not None and not torch.is_grad_enabled() else None
        residual = None if cache is None else cache.reusable(self.cache_probe(x, time_modulation), context)
        if residual is not None:
            x = x + residual
        else:
            stack_input = x
            for i, block in enumerate(self.blocks):
                if context is not None:
                    text = context.text[i]
                    reference = context.reference[i] if context.reference is not None else None
                block_text = text if text_bias is None else BiasedContext(text, text_bias)
                args = (x, time_modulation, rope, block_text, text_mask, reference, reference_mask)
                if self.config.gradient_checkpointing and self.training:
                    x = checkpoint(block, *args, use_reentrant=False)
                else:
                    x = block(*args)
            if cache is not None:
                cache.store(x - stack_input)
        shift, scale = (self.final_modulation + emb[:, None]).chunk(2, dim=1)
        x = self.head(self.final_norm(x) * (1 + scale) + shift)  # (B, L, p_t*p_h*p_w*C)
        return self.unpatchify(x, grid)

    def cache_probe(self, x: torch.Tensor, time_modulation: torch.Tensor) -> torch.Tensor:
        """The first block's timestep-modulated input: what a step cache compares between steps."""
        first = self.blocks[0]
        shift, scale = (first.modulation + time_modulation)[:, :2].chunk(2, dim=1)
        return modulate(first.norm_self(x), shift, scale)

    def time_conditioning(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The timestep embedding (B, D) and the shared modulation table (B, 6, D), in fp32 even under bf16
        autocast: the gates and scales of every block come from here, and bf16 would quantise them."""
        with torch.autocast(t.device.type, enabled=False):
            emb = self.time_embed(timestep_embedding(t, self.config.time_freq_dim).to(self.head.weight.dtype))
            return emb, self.time_modulation(emb).unflatten(1, (6, -1))

    @torch.no_grad()
    def cross_context(self, cond: Conditioning) -> CrossContext:
        """Project the text once through `text_proj`, then into every block's keys and values (references too);
        a run of identical padding tokens is attended as one (`collapse_repeated_tail`), as in `forward`."""
        states, text_mask, text_bias = collapse_repeated_tail(cond.text, cond.text_mask)
        text = self.text_proj(states.to(self.head.weight.dtype))
        personal = cond.reference is not None and self.config.personalization
        reference = cond.reference.to(text.dtype) if personal else None
        return CrossContext(
            text=[block.text_attn.keys_values(text, text_bias) for block in self.blocks],
            text_mask=drop_full_mask(text_mask),
            reference=[block.ref_attn.keys_values(reference) for block in self.blocks] if personal else None,
            reference_mask=drop_full_mask(cond.reference_mask) if personal else None,
        )

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        pt, ph, pw = self.config.patch_size
        t, h, w = grid
        x = x.reshape(x.shape[0], t, h, w, pt, ph, pw, self.latent_channels)
        return x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(
            x.shape[0], self.latent_channels, t * pt, h * ph, w * pw
        )

    def personalization_parameters(self) -> list[nn.Parameter]:
        return [p for block in self.blocks for p in block.personalization_parameters()]
