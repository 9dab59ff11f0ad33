"""The DiT block: self-attention, text cross-attention, personalization cross-attention, feed-forward."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from model.attention import attention
from model.config import QKNorm
from model.layers import FeedForward, FP32LayerNorm, RMSNorm
from model.rope import apply_rotary

KeysValues = tuple[torch.Tensor, torch.Tensor]  # (B, heads, L, head_dim) each


def concatenate_projections(
    state: dict[str, Any], prefix: str, separate: tuple[str, ...], fused: str
) -> None:
    """Replace the separate projections under `prefix` (as checkpoints from before the fusion hold them)
    by their concatenation, in place; parts that are missing or do not stack are left as they are."""
    for leaf in ("weight", "bias"):
        names = [f"{prefix}{p}.{leaf}" for p in separate]
        if all(n in state for n in names) and len({state[n].shape[1:] for n in names}) == 1:
            state[f"{prefix}{fused}.{leaf}"] = torch.cat([state.pop(n) for n in names])


def fused_projections(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A whole checkpoint's separate `to_q`/`to_k`/`to_v` rewritten to `to_qkv` (self-attention) and
    `to_kv` (cross-attention), so a checkpoint from before the fusion loads; other keys pass through."""
    state = dict(state)
    for key in [k for k in state if k.endswith(".to_v.weight")]:
        prefix = key.removesuffix("to_v.weight")
        if prefix.endswith("self_attn."):
            concatenate_projections(state, prefix, SelfAttention.separate, SelfAttention.fused)
        else:
            concatenate_projections(state, prefix, CrossAttention.separate, CrossAttention.fused)
    return state


class Heads(nn.Module):
    """What self- and cross-attention share: head split, QK-norm, the output projection.

    QK-norm is an RMSNorm over each head, or over all heads together (`across_heads`, Wan's form)."""

    def __init__(self, dim: int, num_heads: int, qk_norm: QKNorm, eps: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qk_norm = qk_norm
        norm_dim = dim if qk_norm == "across_heads" else dim // num_heads
        self.norm_q = nn.Identity() if qk_norm == "none" else RMSNorm(norm_dim, eps)
        self.norm_k = nn.Identity() if qk_norm == "none" else RMSNorm(norm_dim, eps)
        self.to_out = nn.Linear(dim, dim)
        self.register_load_state_dict_pre_hook(self.accept_separate_projections)

    separate: tuple[str, ...]  # the projections the fused one concatenates, in order
    fused: str

    def accept_separate_projections(
        self, module: nn.Module, state: dict[str, Any], prefix: str, *_: Any
    ) -> None:
        """`load_state_dict` of a checkpoint with separate q/k/v projections concatenates them on the fly."""
        concatenate_projections(state, prefix, self.separate, self.fused)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # (B, heads, L, head_dim)

    def normed_heads(self, x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
        return self.heads(norm(x)) if self.qk_norm == "across_heads" else norm(self.heads(x))

    def output(self, out: torch.Tensor) -> torch.Tensor:
        return self.to_out(out.transpose(1, 2).flatten(2))  # (B, L, D)


class SelfAttention(Heads):
    """Self-attention over the video tokens with 3D RoPE; queries, keys and values from one projection."""

    def __init__(self, dim: int, num_heads: int, qk_norm: QKNorm, eps: float = 1e-6) -> None:
        super().__init__(dim, num_heads, qk_norm, eps)
        self.to_qkv = nn.Linear(dim, 3 * dim)

    separate, fused = ("to_q", "to_k", "to_v"), "to_qkv"

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q, k = self.normed_heads(q, self.norm_q), self.normed_heads(k, self.norm_k)
        return self.output(attention(apply_rotary(q, *rope), apply_rotary(k, *rope), self.heads(v)))


class CrossAttention(Heads):
    """Video tokens attend to a context (text, or bound references); its keys and values from one projection."""

    def __init__(self, dim: int, num_heads: int, qk_norm: QKNorm, eps: float = 1e-6) -> None:
        super().__init__(dim, num_heads, qk_norm, eps)
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(dim, 2 * dim)

    separate, fused = ("to_k", "to_v"), "to_kv"

    def keys_values(self, context: torch.Tensor) -> KeysValues:
        """A context's keys and values: fixed for a whole generation, so a sampler computes them once."""
        k, v = self.to_kv(context).chunk(2, dim=-1)
        return self.normed_heads(k, self.norm_k), self.heads(v)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | KeysValues,  # a context, or its precomputed keys and values
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q = self.normed_heads(self.to_q(x), self.norm_q)
        k, v = context if isinstance(context, tuple) else self.keys_values(context)
        out = self.output(attention(q, k, v, mask))
        if mask is not None:  # a sample with nothing to attend to gets no update, not the output bias
            out = out * mask.any(dim=-1)[:, None, None].to(out.dtype)
        return out


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class DiTBlock(nn.Module):
    """adaLN-zero block. Every residual branch starts at zero, so a fresh block is the identity and the
    personalization branch added in stage 2 leaves the stage-1 model unchanged at its first step."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        qk_norm: QKNorm,
        personalization: bool,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm_self = FP32LayerNorm(dim, elementwise_affine=False, eps=eps)
        self.self_attn = SelfAttention(dim, num_heads, qk_norm, eps)
        self.norm_text = FP32LayerNorm(dim, eps=eps)
        self.text_attn = CrossAttention(dim, num_heads, qk_norm, eps)
        self.personalization = personalization
        if personalization:
            self.norm_ref = FP32LayerNorm(dim, eps=eps)
            self.ref_attn = CrossAttention(dim, num_heads, qk_norm, eps)
        self.norm_mlp = FP32LayerNorm(dim, elementwise_affine=False, eps=eps)
        self.mlp = FeedForward(dim, ffn_dim)
        # Per-block offsets added to the shared timestep modulation (adaLN-single); zero = adaLN-zero.
        self.modulation = nn.Parameter(torch.zeros(1, 6, dim))
        self.zero_cross_attention_outputs()

    def zero_cross_attention_outputs(self) -> None:
        branches = [self.text_attn.to_out] + ([self.ref_attn.to_out] if self.personalization else [])
        for branch in branches:
            nn.init.zeros_(branch.weight)
            nn.init.zeros_(branch.bias)

    def personalization_parameters(self) -> list[nn.Parameter]:
        if not self.personalization:
            return []
        return [*self.ref_attn.parameters(), *self.norm_ref.parameters()]

    def forward(
        self,
        x: torch.Tensor,  # (B, L, D) video tokens
        time_modulation: torch.Tensor,  # (B, 6, D)
        rope: tuple[torch.Tensor, torch.Tensor],
        text: torch.Tensor | KeysValues,  # (B, L_text, D), or this block's keys and values of it
        text_mask: torch.Tensor | None,  # (B, L_text); None: every token valid
        reference: torch.Tensor
        | KeysValues
        | None = None,  # (B, L_ref, D) bound entity tokens; None in stage 1
        reference_mask: torch.Tensor | None = None,  # (B, L_ref)
    ) -> torch.Tensor:
        shift_sa, scale_sa, gate_sa, shift_ff, scale_ff, gate_ff = (self.modulation + time_modulation).chunk(
            6, dim=1
        )
        x = x + gate_sa * self.self_attn(modulate(self.norm_self(x), shift_sa, scale_sa), rope)
        x = x + self.text_attn(self.norm_text(x), text, text_mask)
        if self.personalization and reference is not None:
            x = x + self.ref_attn(self.norm_ref(x), reference, reference_mask)
        return x + gate_ff * self.mlp(modulate(self.norm_mlp(x), shift_ff, scale_ff))
