"""The DiT block: self-attention, text cross-attention, personalization cross-attention, feed-forward."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from model.attention import attention, context_softmax
from model.config import QKNorm
from model.layers import FeedForward, FP32LayerNorm, RMSNorm
from model.rope import apply_rotary


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


class KeysValues(NamedTuple):
    """A context's keys and values, [B, heads, L, head_dim] each; `bias` [B, L] is added to every score of a key
    (the log-multiplicity of a key standing for a run of identical ones, `dit.collapse_repeated_tail`)."""

    keys: torch.Tensor
    values: torch.Tensor
    bias: torch.Tensor | None = None


class ShortContext(NamedTuple):
    """A short context (heads * L < D: a caption, a few references) laid out so that attending to it takes two
    matmuls per query. `keys` [B, D, heads * L] are block-diagonal over heads (head h's channels meet only its own
    L columns) and carry the query norm's weight and the softmax scale; `values` [B, heads * L, D] are each
    head's values already multiplied by its slice of the output projection W_o:
    out = sum_h softmax(q_h k_h^T / sqrt(d)) (v_h W_o,h^T) + b_o, the same function as attention then W_o, with
    heads * L * D multiplications per query instead of D^2 + 2 L D, and fixed for a whole generation. `bias` as in
    `KeysValues`."""

    keys: torch.Tensor
    values: torch.Tensor
    bias: torch.Tensor | None = None


class BiasedContext(NamedTuple):
    """Context tokens [B, L, D] with a score bias per token [B, L] (`dit.collapse_repeated_tail`), projected to
    keys and values inside the attention, so gradient checkpointing recomputes them with the block."""

    tokens: torch.Tensor
    bias: torch.Tensor


class Heads(nn.Module):
    """What self- and cross-attention share: head split, QK-norm, the output projection.

    QK-norm is an RMSNorm over each head, or over all heads together (`across_heads`, Wan's form). Tokens stay
    [B, L, heads, head_dim] until attention, which takes [B, heads, L, head_dim] views of them."""

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

    def split(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, -1))  # (B, L, heads, head_dim)

    def normed(self, x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
        return self.split(norm(x)) if self.qk_norm == "across_heads" else norm(self.split(x))

    def output(self, out: torch.Tensor) -> torch.Tensor:
        return self.to_out(out.transpose(1, 2).flatten(2))  # (B, L, D)


class SelfAttention(Heads):
    """Self-attention over the video tokens with 3D RoPE; queries, keys and values from one projection."""

    def __init__(self, dim: int, num_heads: int, qk_norm: QKNorm, eps: float = 1e-6) -> None:
        super().__init__(dim, num_heads, qk_norm, eps)
        self.to_qkv = nn.Linear(dim, 3 * dim)

    separate, fused = ("to_q", "to_k", "to_v"), "to_qkv"

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q = apply_rotary(self.normed(q, self.norm_q), rope)
        k = apply_rotary(self.normed(k, self.norm_k), rope)
        return self.output(attention(q.transpose(1, 2), k.transpose(1, 2), self.split(v).transpose(1, 2)))


class CrossAttention(Heads):
    """Video tokens attend to a context (text, or bound references); its keys and values from one projection.

    A context of L tokens with heads * L < D (a caption, a few references) is attended as a `ShortContext`: the
    same function with fewer multiplications and kernels per video token."""

    def __init__(self, dim: int, num_heads: int, qk_norm: QKNorm, eps: float = 1e-6) -> None:
        super().__init__(dim, num_heads, qk_norm, eps)
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(dim, 2 * dim)

    separate, fused = ("to_k", "to_v"), "to_kv"

    def is_short(self, context_length: int) -> bool:
        """Whether a context this long attends as a `ShortContext`: when that is cheaper, and only with a plain
        W_o (a LoRA-wrapped projection is applied as it stands, its adapter included)."""
        return type(self.to_out) is nn.Linear and self.num_heads * context_length < self.to_out.in_features

    def keys_values(
        self, context: torch.Tensor, bias: torch.Tensor | None = None
    ) -> KeysValues | ShortContext:
        """A context's keys and values: fixed for a whole generation, so a sampler computes them once."""
        k, v = self.to_kv(context).chunk(2, dim=-1)
        keys, values = self.normed(k, self.norm_k).transpose(1, 2), self.split(v).transpose(1, 2)
        if self.is_short(context.shape[1]):
            return self.short_context(keys, values, bias)
        return KeysValues(keys, values, bias)

    def short_context(
        self, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor | None = None
    ) -> ShortContext:
        batch, heads, length, head_dim = keys.shape
        query_weight = 1.0 if self.qk_norm == "none" else self.norm_q.weight.view(-1, 1, head_dim)
        keys = keys * query_weight * head_dim**-0.5
        eye = torch.eye(heads, dtype=keys.dtype, device=keys.device)
        block_keys = torch.einsum("bhld,hg->bhdgl", keys, eye).reshape(
            batch, heads * head_dim, heads * length
        )
        out_weight = self.to_out.weight.unflatten(1, (heads, head_dim))  # (D, heads, head_dim)
        folded = torch.einsum("bhld,ehd->bhle", values, out_weight).reshape(batch, heads * length, -1)
        return ShortContext(block_keys, folded, bias)

    def unweighted_queries(self, q: torch.Tensor) -> torch.Tensor:
        """Queries [B, L, D] under QK-norm without its weight, which a `ShortContext`'s keys carry."""
        if self.qk_norm == "none":
            return q
        return self.normed(q, self.norm_q.unweighted).flatten(-2)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | BiasedContext | KeysValues | ShortContext,  # tokens, or their keys and values
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if isinstance(context, torch.Tensor):
            context = self.keys_values(context)
        elif isinstance(context, BiasedContext):
            context = self.keys_values(context.tokens, context.bias)
        if isinstance(context, ShortContext):
            q = self.unweighted_queries(self.to_q(x))
            scores = (q @ context.keys).unflatten(-1, (self.num_heads, -1))
            if context.bias is not None:  # fp32, so log n stays exact under bf16 autocast
                scores = scores + context.bias[:, None, None, :]
            weights = context_softmax(scores, mask).flatten(-2).to(context.values.dtype)
            out = torch.baddbmm(self.to_out.bias.to(weights.dtype), weights, context.values)
        else:
            q = self.normed(self.to_q(x), self.norm_q).transpose(1, 2)
            out = self.output(attention(q, context.keys, context.values, mask, context.bias))
        if mask is not None:  # a sample with nothing to attend to gets no update, not the output bias
            out = out * mask.any(dim=-1)[:, None, None].to(out.dtype)
        return out


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return torch.addcmul(shift, x, 1 + scale)  # x * (1 + scale) + shift in one kernel


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
        rope: torch.Tensor,  # (L, head_dim // 2, 2) cos and sin of the rotations
        text: torch.Tensor
        | BiasedContext
        | KeysValues
        | ShortContext,  # (B, L_text, D), or this block's keys and values of it
        text_mask: torch.Tensor | None,  # (B, L_text); None: every token valid
        reference: torch.Tensor
        | KeysValues
        | ShortContext
        | None = None,  # (B, L_ref, D) bound entity tokens; None in stage 1
        reference_mask: torch.Tensor | None = None,  # (B, L_ref)
    ) -> torch.Tensor:
        shift_sa, scale_sa, gate_sa, shift_ff, scale_ff, gate_ff = (self.modulation + time_modulation).chunk(
            6, dim=1
        )
        x = torch.addcmul(x, gate_sa, self.self_attn(modulate(self.norm_self(x), shift_sa, scale_sa), rope))
        x = x + self.text_attn(self.norm_text(x), text, text_mask)
        if self.personalization and reference is not None:
            x = x + self.ref_attn(self.norm_ref(x), reference, reference_mask)
        return torch.addcmul(x, gate_ff, self.mlp(modulate(self.norm_mlp(x), shift_ff, scale_ff)))
