"""End-to-end generation: our Generator on an imported Wan2.1 against diffusers' WanPipeline, in one process.

A small random Wan2.1 pipeline (transformer, UMT5 text encoder, AutoencoderKLWan) is saved in the published
diffusers layout and imported with `alchemist model import-wan`. Both then generate the same prompt from the
same initial noise with the same scheduler (flow-match Euler, shift 3) and classifier-free guidance against the
empty prompt. Prints the time ratio ours / diffusers, the same ratio for each phase (encoding the conditioning,
denoising, decoding) and the max difference of the two videos (caching off).
`--cache-threshold` adds ours with the step cache (`model.sampler.StepCache`): its time, the steps it skipped
and how far its video drifts from the uncached one.

    python benchmarks/sampling.py [--steps 10] [--repeats 3] [--cache-threshold 0.1] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
from dit_step import time_interleaved
from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

from model.alchemist import VideoAlchemist
from model.encoders.text import minilm_folder
from model.generator import Generator
from model.sampler import StepCache
from model.wan import import_wan

PROMPT = "a red fox runs across a snowy field"
SHIFT = 3.0


PHASES = ("encode", "denoise", "decode")


class PhaseClock:
    """Seconds each run of a pipeline spends in its phases, found by wrapping the methods that do them."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)
        self.runs: list[dict[str, float]] = []

    def wrap(self, owner: object, method: str, phase: str) -> None:
        inner = getattr(owner, method)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.current[phase] += time.perf_counter() - start

        setattr(owner, method, timed)

    def run(self, fn: Callable[[], np.ndarray]) -> Callable[[], np.ndarray]:
        def timed_run() -> np.ndarray:
            self.current = defaultdict(float)
            try:
                return fn()
            finally:
                self.runs.append(dict(self.current))

        return timed_run

    def median(self, phase: str) -> float:
        return statistics.median(run.get(phase, 0.0) for run in self.runs[1:])  # past the warm-up


def save_pipeline(root: Path, width: int, depth: int) -> None:
    """A random Wan2.1 T2V pipeline folder: transformer/, text_encoder/, tokenizer/, vae/."""
    torch.manual_seed(0)
    transformer = WanTransformer3DModel(
        num_attention_heads=width // 64, attention_head_dim=64, in_channels=16, out_channels=16, text_dim=64,
        freq_dim=256, ffn_dim=4 * width, num_layers=depth,
    )  # fmt: skip
    with torch.no_grad():
        for parameter in transformer.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    transformer.save_pretrained(root / "transformer")
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_folder()))
    tokenizer.save_pretrained(root / "tokenizer")
    config = UMT5Config(vocab_size=len(tokenizer), d_model=64, d_kv=32, d_ff=128, num_layers=2, num_heads=2)
    UMT5EncoderModel(config).save_pretrained(root / "text_encoder")
    AutoencoderKLWan(
        base_dim=16, z_dim=16, dim_mult=[1, 2, 4], num_res_blocks=1, temperal_downsample=[False, True],
        scale_factor_temporal=2, scale_factor_spatial=4,
    ).save_pretrained(root / "vae")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--cache-threshold", type=float, default=0.0, help="> 0: also time ours with the step cache"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        save_pipeline(root, args.width, args.depth)
        import_wan(root / "transformer", root / "imported")
        model = VideoAlchemist.from_pretrained(root / "imported", map_location=device)
        ours = Generator(model, str(device))
        peer = WanPipeline(
            tokenizer=AutoTokenizer.from_pretrained(root / "tokenizer"),
            text_encoder=UMT5EncoderModel.from_pretrained(root / "text_encoder"),
            vae=AutoencoderKLWan.from_pretrained(root / "vae"),
            scheduler=FlowMatchEulerDiscreteScheduler(shift=SHIFT),
            transformer=WanTransformer3DModel.from_pretrained(root / "transformer"),
        ).to(device)
        peer.set_progress_bar_config(disable=True)
        assert model.config.flow.shift == SHIFT and model.config.flow.time_grid == "flow_match"
        assert model.config.flow.sampler == "euler"  # as the peer's scheduler: one evaluation per step
        shape = model.config.latent_shape(args.frames, args.size, args.size)
        seed = 7
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))[None].to(device)
        common = dict(frames=args.frames, height=args.size, width=args.size, steps=args.steps)

        def run_ours(step_cache: StepCache | None = None) -> np.ndarray:
            return ours.generate(
                PROMPT, {}, guidance=args.guidance, seed=seed, step_cache=step_cache, **common
            )

        def run_peer() -> np.ndarray:
            return peer(
                PROMPT, negative_prompt="", height=args.size, width=args.size, num_frames=args.frames,
                num_inference_steps=args.steps, guidance_scale=args.guidance, latents=noise.clone(), output_type="np",
            ).frames[0]  # fmt: skip

        cache = StepCache(args.cache_threshold)

        def run_cached() -> np.ndarray:
            return run_ours(cache)

        ours_clock, peer_clock = PhaseClock(), PhaseClock()
        for clock, owner, method, phase in (
            (ours_clock, model, "encode_conditioning", "encode"),
            (ours_clock, model.dit, "forward", "denoise"),
            (ours_clock, model.vae, "decode", "decode"),
            (peer_clock, peer, "encode_prompt", "encode"),
            (peer_clock, peer.transformer, "forward", "denoise"),
            (peer_clock, peer.vae, "decode", "decode"),
        ):
            clock.wrap(owner, method, phase)
        runs = {"ours": ours_clock.run(run_ours), "peer": peer_clock.run(run_peer)}
        with torch.no_grad():
            plain = run_ours().astype(np.float64) / 255
            difference = np.abs(plain - run_peer().astype(np.float64)).max()
            if args.cache_threshold > 0:
                drift = np.abs(run_cached().astype(np.float64) / 255 - plain).max()
                computed, moves = cache.computed, np.array(cache.moves)
                runs["cached"] = run_cached
            seconds = time_interleaved(runs, args.repeats, device)
    print(
        f"device={device}, threads={torch.get_num_threads()}, fp32; Wan-shaped DiT width {args.width}, depth "
        f"{args.depth}; {args.frames}x{args.size}x{args.size} video, {args.steps} steps, guidance {args.guidance}"
    )
    print(
        f"ours {seconds['ours']:.3f} s, WanPipeline {seconds['peer']:.3f} s, ratio {seconds['ours'] / seconds['peer']:.2f}; "
        f"max |ours - diffusers| = {difference:.4f} of full scale ({difference * 255:.2f} of 255 levels)"
    )
    print(
        "by phase, ours / WanPipeline: "
        + "; ".join(
            f"{phase} {ours_clock.median(phase):.3f} / {peer_clock.median(phase):.3f} s "
            f"({ours_clock.median(phase) / max(peer_clock.median(phase), 1e-9):.2f})"
            for phase in PHASES
        )
    )
    if args.cache_threshold > 0:
        print(
            f"step cache at {args.cache_threshold}: {seconds['cached']:.3f} s, speed-up "
            f"{seconds['ours'] / seconds['cached']:.2f}x over uncached, ratio {seconds['cached'] / seconds['peer']:.2f}"
            f" to WanPipeline; {computed} of {args.steps} steps computed; max |cached - uncached| = "
            f"{drift:.4f} of full scale ({drift * 255:.1f} of 255 levels); {moved(moves)}"
        )


def moved(moves: np.ndarray) -> str:
    if not moves.size:
        return "one step: nothing to compare"
    return (
        f"the probe moved {moves.min():.3f} / {np.median(moves):.3f} / {moves.max():.3f} per step "
        "(min / median / max)"
    )


if __name__ == "__main__":
    main()
