"""Forward + backward time of our video DiT against diffusers' WanTransformer3DModel at matched size.

Both run side by side in one process on the same inputs: equal width, depth, heads, FFN width, patch size,
latent grid and text length. Ours runs as in stage 1 (text cross-attention only, self-conditioning off), which
is the block structure Wan has; a second row adds our personalization cross-attention over 3 entities.
Prints the ratio ours / peer without and with personalization (goal: <= 0.85 with it), the personalization
overhead (ours with references over ours without), the FLOP ratios PyTorch's FLOP counter gives for the same
steps (the time ratio two equally fast implementations would show) and, on a GPU, the model FLOP utilisation of
each. With `--compile` both models are also compiled with torch.compile and timed compiled against compiled,
interleaved with the eager runs. Row W is Wan2.1-T2V-1.3B's block shape (2 blocks on the CPU, all 30 at 480p x 81 frames
on a GPU).

    python benchmarks/dit_step.py                 # CPU, four sizes
    python benchmarks/dit_step.py --compile       # and compiled against compiled
    python benchmarks/dit_step.py --device cuda   # GPU, bf16 autocast, MFU against --peak-tflops
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import WanTransformer3DModel
from torch.utils.flop_counter import FlopCounterMode

from model.config import DiTConfig
from model.dit import Conditioning, VideoDiT

LATENT_CHANNELS = 16
TEXT_DIM = 256
TEXT_TOKENS = 32


@dataclass
class Size:
    name: str
    width: int
    depth: int
    heads: int
    grid: tuple[int, int, int]  # latent (T, H, W) before the (1, 2, 2) patch
    ffn: int | None = None  # None: 4 x width

    @property
    def ffn_dim(self) -> int:
        return self.ffn or 4 * self.width

    @property
    def tokens(self) -> int:
        t, h, w = self.grid
        return t * (h // 2) * (w // 2)


# W: Wan2.1-T2V-1.3B's block (width 1536, FFN 8960, 12 heads); on the CPU at 2 blocks, on a GPU at all 30 over
# Wan's 480p, 81-frame latent grid (21 x 60 x 104).
CPU_SIZES = [
    Size("S", 192, 4, 4, (4, 16, 16)),
    Size("M", 384, 6, 6, (4, 24, 24)),
    Size("L", 576, 8, 8, (8, 24, 24)),
    Size("W", 1536, 2, 12, (2, 16, 16), ffn=8960),
]
GPU_SIZES = [
    Size("S", 1024, 8, 16, (8, 32, 32)),
    Size("M", 1536, 16, 16, (16, 36, 64)),
    Size("L", 2048, 20, 16, (21, 36, 64)),
    Size("W", 1536, 30, 12, (21, 60, 104), ffn=8960),
]


def build_pair(size: Size, device: torch.device) -> tuple[VideoDiT, WanTransformer3DModel]:
    ours = VideoDiT(
        DiTConfig(
            hidden_size=size.width,
            depth=size.depth,
            num_heads=size.heads,
            ffn_dim=size.ffn_dim,
            qk_norm="across_heads",  # as the peer
            self_conditioning=False,
        ),
        LATENT_CHANNELS,
        TEXT_DIM,
    )
    peer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=size.heads,
        attention_head_dim=size.width // size.heads,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        text_dim=TEXT_DIM,
        ffn_dim=size.ffn_dim,
        num_layers=size.depth,
    )
    for module in (ours, peer):
        torch.nn.init.normal_(module.get_submodule("head" if module is ours else "proj_out").weight, std=0.02)
    return ours.to(device), peer.to(device)


def counted_flops(run: Callable[[], None]) -> int:
    """Matmul and attention FLOPs of one forward + backward, as PyTorch's FLOP counter sees them: the work
    each model does, whatever its kernels, so time ratios can be read against work ratios."""
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the OS (Linux only).

    Without this every gradient buffer above glibc's mmap threshold (W's FFN weights are 55 MB) is a fresh mapping
    each step, and on this VM first-touch page faults cost about 1 ms per MB: hundreds of milliseconds a step at
    W, varying run to run, whichever model allocates them. Training keeps its buffers (DeepSpeed's contiguous
    gradients, the CUDA caching allocator), so the step is timed the same way, for both models alike."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 2**31 - 1))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_interleaved(
    runs: dict[str, Callable[[], None]], repeats: int, device: torch.device
) -> dict[str, float]:
    """Median seconds per call; the contenders alternate so background load hits them alike."""
    for run in runs.values():
        run()  # warm-up: allocator, kernels, autotuning
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def bench_size(
    size: Size,
    batch: int,
    repeats: int,
    device: torch.device,
    peak_tflops: float | None,
    compiled: bool,
    text_length: int,
) -> str:
    ours, peer = build_pair(size, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    latents = torch.randn(batch, LATENT_CHANNELS, *size.grid, device=device)
    text = torch.randn(batch, TEXT_TOKENS, TEXT_DIM, device=device)
    text = torch.nn.functional.pad(text, (0, 0, 0, max(text_length - TEXT_TOKENS, 0)))  # Wan: zeros, attended
    text_mask = torch.ones(batch, text.shape[1], dtype=torch.bool, device=device)
    t = torch.rand(batch, device=device)
    stage1 = Conditioning(text=text, text_mask=text_mask)
    reference = torch.randn(batch, 3 * 5, size.width, device=device)  # 3 entities x 5 tokens each
    personal = Conditioning(
        text, text_mask, reference, torch.ones(batch, 15, dtype=torch.bool, device=device)
    )

    def step(ours_fn: Callable, peer_fn: Callable) -> dict[str, Callable[[], None]]:
        def run_ours(cond: Conditioning) -> None:
            ours.zero_grad(set_to_none=True)  # as an optimizer step leaves them: written, not accumulated
            with autocast:
                ours_fn(latents, t, cond).float().square().mean().backward()

        def run_peer() -> None:
            peer.zero_grad(set_to_none=True)
            with autocast:
                peer_fn(latents, t * 1000, text, return_dict=False)[0].float().square().mean().backward()

        return {"ours": lambda: run_ours(stage1), "peer": run_peer, "personal": lambda: run_ours(personal)}

    runs = step(ours, peer)
    flops = {name: counted_flops(run) for name, run in runs.items()}
    drift = ""
    if compiled:  # the same modules, compiled alike; their weights and gradients are shared with eager
        ours_c, peer_c = torch.compile(ours), torch.compile(peer)
        runs |= {f"{k} compiled": v for k, v in step(ours_c, peer_c).items()}
        with torch.no_grad(), autocast:
            difference = (ours_c(latents, t, personal) - ours(latents, t, personal)).abs().max()
        drift = f"  compiled vs eager {float(difference):.1e}"
    seconds = time_interleaved(runs, repeats, device)
    stage1_params = sum(p.numel() for p in ours.parameters()) - sum(
        p.numel() for p in ours.personalization_parameters()
    )
    peer_params = sum(p.numel() for p in peer.parameters())
    line = (
        f"{size.name:4} {size.width:5d} {size.depth:5d} {size.heads:5d} {size.tokens * batch:6d} "
        f"{stage1_params / 1e6:7.1f} / {peer_params / 1e6:7.1f} "
        f"{flops['ours'] / flops['peer']:5.2f} {flops['personal'] / flops['peer']:5.2f}"
    )
    for suffix in ("", " compiled") if compiled else ("",):
        ours_s, peer_s, personal_s = (seconds[f"{k}{suffix}"] for k in ("ours", "peer", "personal"))
        line += (
            f" | {ours_s:7.3f} {personal_s:7.3f} {peer_s:7.3f} {ours_s / peer_s:5.2f} {personal_s / peer_s:5.2f} "
            f"{personal_s / ours_s - 1:+6.1%}"
        )
    if peak_tflops:
        peak = peak_tflops * 1e12
        suffix = " compiled" if compiled else ""
        line += (
            f"  {flops['ours'] / seconds['ours' + suffix] / peak:5.1%} / "
            f"{flops['peer'] / seconds['peer' + suffix] / peak:5.1%}"
        )
    return line + drift


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument(
        "--sizes", default="S,M,L,W", help="comma-separated subset of S, M, L, W (Wan2.1-1.3B)"
    )
    parser.add_argument(
        "--compile", action="store_true", help="also time both models under torch.compile, interleaved"
    )
    parser.add_argument(
        "--text-length",
        type=int,
        default=TEXT_TOKENS,
        help=f"text tokens: {TEXT_TOKENS} prompt tokens, zero-padded to this many as Wan's encoder does (Wan: 512)",
    )
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100 SXM: 989)")
    parser.add_argument(
        "--return-freed-memory",
        action="store_true",
        help="leave glibc's default of returning large freed blocks to the OS (page faults every step)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    kept = not args.return_freed_memory and device.type == "cpu" and keep_freed_memory()
    torch.manual_seed(0)
    sizes = [
        s for s in (GPU_SIZES if device.type == "cuda" else CPU_SIZES) if s.name in args.sizes.split(",")
    ]
    on_gpu = device.type == "cuda"
    print(
        f"device={device} ({torch.cuda.get_device_name() if on_gpu else 'cpu'}), threads={torch.get_num_threads()}, "
        f"batch={args.batch}, repeats={args.repeats}, dtype={'bf16 autocast' if on_gpu else 'fp32'}, "
        f"freed memory {'kept for reuse' if kept else 'returned to the OS'}, text {TEXT_TOKENS} tokens"
        f"{f' zero-padded to {args.text_length}' if args.text_length > TEXT_TOKENS else ''}; "
        "seconds per forward + backward (median), ratio = ours / peer, +pers. = ours with 3 references; FLOPs = "
        "counted matmul and attention FLOPs, ours / peer: the time ratio at equal speed per FLOP"
    )
    columns = f" | {'ours':>7} {'+pers.':>7} {'peer':>7} {'ratio':>5} {'+pers':>5} {'overhd':>6}"
    print(
        f"{'size':4} {'width':>5} {'depth':>5} {'heads':>5} {'tokens':>6} {'params ours/peer (M)':>17} "
        f"{'FLOPs':>5} {'+pers':>5}"
        + columns
        + (columns.replace(" | ", " | compiled: ") if args.compile else "")
        + ("  MFU ours/peer" if on_gpu else "")
    )
    for size in sizes:
        print(
            bench_size(
                size,
                args.batch,
                args.repeats,
                device,
                args.peak_tflops if on_gpu else None,
                args.compile,
                args.text_length,
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
