"""Parameters and memory per GPU of the Wan2.1 presets, for full and personalization-only training.

Parameters are counted on the meta device (no memory). State bytes are arithmetic (bf16 weights and gradients,
fp32 master weights and Adam moments, our fp32 EMA of the trained weights, which every rank holds whole).
Activations are measured: the bytes autograd saves for one block (bf16 autocast, with references) at three
token counts, keeping the part linear in the token count, which is what a flash-attention kernel saves,
then scaled to the preset's latent grid (a quadratic part, attention probabilities some CPU kernels keep, is
dropped because the GPU path does not keep it).

    python benchmarks/wan_memory.py [--gpus 8] [--lora-rank 64]
"""

from __future__ import annotations

import argparse
import re

import numpy as np
import torch

from components.train.lora import BACKBONE_TARGETS
from model.binding import EntityBinder
from model.blocks import DiTBlock
from model.config import preset
from model.dit import VideoDiT

GIB = 1024**3
IMAGE_DIM = 1024  # DINOv2-L
REFERENCE_TOKENS = 3 * 65  # three entities, one image each, 1 + 8 x 8 tokens


def saved_bytes_per_token(width: int, heads: int, ffn: int, text_tokens: int) -> float:
    """Autograd's saved bytes per video token for one block: b of a + b L + c L^2 fitted at three L."""
    block = DiTBlock(width, heads, ffn, "across_heads", personalization=True)
    sizes = []
    points = (64, 128, 256)
    for tokens in points:
        total = 0

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            nonlocal total
            total += tensor.numel() * tensor.element_size()
            return tensor

        x = torch.randn(1, tokens, width, requires_grad=True)
        rope = torch.stack(
            [torch.ones(tokens, width // heads // 2), torch.zeros(tokens, width // heads // 2)], -1
        )
        text, reference = torch.randn(1, text_tokens, width), torch.randn(1, REFERENCE_TOKENS, width)
        with (
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
            torch.autocast("cpu", torch.bfloat16),
        ):
            block(x, torch.randn(1, 6, width), rope, text, None, reference, None).sum()
        sizes.append(total)
    # a: text and reference keys/values; c: attention probabilities where the kernel keeps them
    _, linear, _ = np.linalg.solve(np.array([[1, n, n * n] for n in points], float), np.array(sizes, float))
    return float(linear)


def report(name: str, gpus: int, lora_rank: int) -> list[str]:
    config = preset(name)
    dit_cfg = config.dit
    with torch.device("meta"):
        dit = VideoDiT(dit_cfg, config.vae.latent_channels, dit_cfg.text_dim)
        binder = EntityBinder(
            IMAGE_DIM, dit_cfg.text_dim, config.text.max_word_tokens, dit_cfg.hidden_size, True
        )
    total = sum(p.numel() for p in dit.parameters()) + sum(p.numel() for p in binder.parameters())
    personal = sum(p.numel() for p in dit.personalization_parameters()) + sum(
        p.numel() for p in binder.parameters()
    )
    d, f, depth = dit_cfg.hidden_size, dit_cfg.ffn_dim, dit_cfg.depth
    # LoRA adds rank * (in + out) per adapted linear: exactly the layers training adapts
    lora = lora_rank * sum(
        m.in_features + m.out_features
        for name, m in dit.named_modules()
        if isinstance(m, torch.nn.Linear) and re.fullmatch(BACKBONE_TARGETS, name)
    )
    t, h, w = config.video.frames, config.video.height, config.video.width
    tokens = config.video_tokens(t, h, w)
    per_token = saved_bytes_per_token(d, dit_cfg.num_heads, f, config.text.max_length)
    block_acts = per_token * tokens
    acts = {"no checkpointing": depth * block_acts, "checkpointing": depth * tokens * d * 2 + block_acts}
    lines = [
        f"{name}: {total / 1e9:.2f} B parameters ({personal / 1e9:.2f} B personalization + binder"
        + (f", LoRA r={lora_rank}: {lora / 1e6:.0f} M" if lora_rank else "")
        + f"); {tokens} video tokens at {t}x{h}x{w}; activations {per_token / 1024:.1f} KiB per token per block"
    ]
    modes = {
        "full": total,
        "personalization": personal,
        f"personalization + LoRA r={lora_rank}": personal + lora,
    }
    if not lora_rank:
        modes.pop(f"personalization + LoRA r={lora_rank}")
    for mode, trained in modes.items():
        for zero in (2, 3):
            weights = 2 * (total + lora) / (gpus if zero == 3 else 1)
            grads = 2 * trained / gpus
            optimizer = 12 * trained / gpus
            ema = 4 * trained
            state = (weights + grads + optimizer + ema) / GIB
            for label, act in acts.items():
                lines.append(
                    f"  {mode:32} ZeRO-{zero} {label:17} states {state:7.1f} GiB + activations "
                    f"{act / GIB:7.1f} GiB = {state + act / GIB:7.1f} GiB per GPU"
                )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--lora-rank", type=int, default=64)
    args = parser.parse_args()
    print(
        f"{args.gpus} GPUs, batch 1 per GPU, bf16; frozen encoders (UMT5-XXL, VAE) not counted: encode once"
    )
    for name in ("wan2.1-t2v-1.3b", "wan2.1-t2v-14b"):
        print("\n".join(report(name, args.gpus, args.lora_rank)))


if __name__ == "__main__":
    main()
