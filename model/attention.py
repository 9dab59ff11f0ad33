"""The one place the attention backend is chosen: flash-attn on GPU when importable, else PyTorch SDPA; and the
softmax of a short context's scores, which `blocks.CrossAttention` computes with plain matmuls."""

from __future__ import annotations

import torch
import torch.nn.functional as F

try:  # flash-attn is an optional GPU extra; SDPA covers every other case.
    from flash_attn import flash_attn_func
except ImportError:  # pragma: no cover - depends on the machine
    flash_attn_func = None


def flash_attention_usable(
    q: torch.Tensor, mask: torch.Tensor | None, bias: torch.Tensor | None = None
) -> bool:
    return (
        flash_attn_func is not None
        and mask is None
        and bias is None
        and q.is_cuda
        and q.dtype in (torch.float16, torch.bfloat16)
    )


def attendable(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A boolean key mask [B, L_k] made safe for softmax, and which samples have any key at all [B].
    A sample without keys gets a dummy key (softmax over nothing is NaN); its caller zeroes its output."""
    any_key = mask.any(dim=-1)
    return mask | ~any_key[:, None], any_key


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multi-head attention over [B, heads, L, head_dim] tensors.

    `mask` is a boolean key mask [B, L_k] (True = attend). Rows whose keys are all masked return zeros,
    so a sample without references contributes nothing through personalization attention. `bias` [B, L_k] is
    added to every score of its key.
    """
    if flash_attention_usable(q, mask, bias):
        out = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)
    if mask is None:
        scores_bias = None if bias is None else bias[:, None, None, :].to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=scores_bias)
    safe_mask, any_key = attendable(mask)
    if bias is None:
        key_mask = safe_mask[:, None, None, :]
    else:
        key_mask = bias.to(q.dtype).masked_fill(~safe_mask, float("-inf"))[:, None, None, :]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
    return out * any_key[:, None, None, None].to(out.dtype)


def context_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax of scores [B, L_q, heads, L_k] over each head's keys, `mask` [B, L_k] as in `attention`; rows
    with every key masked come out finite, for their caller to zero."""
    if mask is not None:
        safe_mask, _ = attendable(mask)
        scores = scores.masked_fill(~safe_mask[:, None, None, :], float("-inf"))
    return scores.softmax(dim=-1)
