"""The imported Wan2.1 backbone against diffusers' WanTransformer3DModel, side by side in one process.

A random Wan2.1-T2V-1.3B-shaped transformer (width 1536, FFN 8960, 12 heads, UMT5 text width 4096) at reduced
depth is perturbed, saved as published (sharded safetensors), imported with `model.wan`, and both run on the
same latents, timestep and text states. Prints the max abs difference (fp32) and the forward time ratio
ours / peer.

    python benchmarks/wan_parity.py                       # CPU, 2 blocks, 3 x 16 x 16 latents
    python benchmarks/wan_parity.py --depth 30 --grid 21,60,104 --device cuda
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel
from dit_step import synchronize, time_interleaved

from model.dit import Conditioning
from model.wan import import_wan_transformer

TEXT_TOKENS = 512  # Wan pads the prompt's states to 512 and attends to all of them


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--grid", default="3,16,16", help="latent T,H,W")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    grid = tuple(int(x) for x in args.grid.split(","))
    torch.manual_seed(0)
    peer = WanTransformer3DModel(
        num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16, text_dim=4096,
        freq_dim=256, ffn_dim=8960, num_layers=args.depth,
    )  # fmt: skip
    with torch.no_grad():
        for parameter in peer.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    with tempfile.TemporaryDirectory() as folder:
        peer.save_pretrained(Path(folder), max_shard_size="1GB")
        ours = import_wan_transformer(folder)
    ours, peer = ours.to(device).eval(), peer.to(device).eval()
    latents = torch.randn(1, 16, *grid, device=device)
    text = torch.randn(1, TEXT_TOKENS, 4096, device=device)
    t = torch.tensor([0.7], device=device)
    cond = Conditioning(text=text, text_mask=torch.ones(1, TEXT_TOKENS, dtype=torch.bool, device=device))
    with torch.no_grad():
        difference = (ours(latents, t, cond) - peer(latents, t * 1000, text).sample).abs().max().item()
        synchronize(device)
        seconds = time_interleaved(
            {"ours": lambda: ours(latents, t, cond), "peer": lambda: peer(latents, t * 1000, text)},
            args.repeats,
            device,
        )
    tokens = grid[0] * (grid[1] // 2) * (grid[2] // 2)
    print(
        f"device={device}, threads={torch.get_num_threads()}, fp32, width 1536, depth {args.depth}, "
        f"{tokens} video tokens, {TEXT_TOKENS} text tokens"
    )
    print(
        f"max |ours - diffusers| = {difference:.2e}; forward ours {seconds['ours']:.3f} s, "
        f"diffusers {seconds['peer']:.3f} s, ratio {seconds['ours'] / seconds['peer']:.2f}"
    )


if __name__ == "__main__":
    main()
