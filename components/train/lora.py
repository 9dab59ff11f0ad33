"""LoRA on the backbone through peft, so that a large pretrained backbone fine-tunes within memory.

The adapters wrap the DiT's self-attention, text cross-attention and FFN projections (the personalization
cross-attention and the binder train in full). They start as zero updates (peft's default B = 0), so the
model computes what it did before, and are merged into the base weights when a stage saves its final
model: what leaves training is a plain checkpoint that evaluation, export and serving load unchanged.
"""

from __future__ import annotations

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn

BACKBONE_TARGETS = (
    r"blocks\.\d+\.(self_attn|text_attn)\.(to_qkv|to_q|to_kv|to_out)|blocks\.\d+\.mlp\.(fc1|fc2)"
)
ADAPTER = "default"


def add_lora(dit: nn.Module, rank: int) -> None:
    """Adapters of `rank` on the backbone; peft freezes every other DiT parameter."""
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, target_modules=BACKBONE_TARGETS), dit)


def has_lora(model: nn.Module) -> bool:
    return any(isinstance(m, LoraLayer) for m in model.modules())


@torch.no_grad()
def merge_lora(model: nn.Module, shadow: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fold every adapter into its base layer, in place; returns the EMA `shadow` renamed to match.

    An adapted layer's EMA weight is its frozen base weight plus the update of the averaged A and B."""
    shadow = dict(shadow)
    for name, module in list(model.named_modules()):
        if not isinstance(module, LoraLayer):
            continue
        a, b = (shadow.pop(f"{name}.lora_{x}.{ADAPTER}.weight", None) for x in ("A", "B"))
        base = module.get_base_layer()
        if a is not None and b is not None:
            shadow[f"{name}.weight"] = base.weight.float() + module.scaling[ADAPTER] * (b.to(a) @ a)
        module.merge(adapter_names=[ADAPTER])
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, base)
    return shadow
