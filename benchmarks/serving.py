"""Serving benchmark: the real tritonserver against an in-process `Generator.generate` of the same request.

Prints, for one preset on this machine: the in-process latency, the served latency at concurrency 1
and their ratio (goal: server overhead under 10%), then throughput and p50/p99 latency for several
concurrent clients. Runs NVIDIA's perf_analyzer too when it is on PATH.

    .venv/bin/python benchmarks/serving.py --preset small --steps 10
"""

from __future__ import annotations

import sys
from pathlib import Path

if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # run as a script, this file would shadow the `serving` package it benchmarks

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from components.export import export_model_repository
from model.alchemist import VideoAlchemist
from model.config import PRESET_NAMES, preset
from model.generator import Generator
from serving.client import AlchemistClient
from serving.launcher import LocalTritonServer, ServerConfig
from serving.media import encode_png

PROMPT = "a dog and a man walk on a beach"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def reference_images() -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    return {
        "dog": [(rng.random((96, 96, 3)) * 255).astype(np.uint8)],
        "man": [(rng.random((96, 80, 3)) * 255).astype(np.uint8)],
    }


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def paired_latencies(generator: Generator, client: AlchemistClient, refs, steps: int, n: int):
    """In-process, served (frames) and served (frames + MP4) latency of the same request, interleaved so
    that load from other processes on a shared host hits all three alike."""
    encoded = {word: [encode_png(image) for image in images] for word, images in refs.items()}
    base, served, served_mp4 = [], [], []
    for seed in range(n):
        start = time.perf_counter()
        generator.generate(PROMPT, refs, steps=steps, seed=seed)
        base.append(time.perf_counter() - start)
        # Files as an application would upload them; the server decodes them inside the measured time.
        served.append(
            client.generate_video(
                PROMPT, references=encoded, steps=steps, seed=seed, with_mp4=False
            ).latency_s
        )
        served_mp4.append(client.generate_video(PROMPT, references=encoded, steps=steps, seed=seed).latency_s)
    return base, served, served_mp4


def served_run(
    url: str, protocol: str, refs, steps: int, concurrency: int, requests: int
) -> tuple[float, list[float]]:
    """Wall time and per-request latencies (frames + MP4) of `requests` generations from `concurrency` clients."""

    encoded = {word: [encode_png(image) for image in images] for word, images in refs.items()}

    def worker(seeds: list[int]) -> list[float]:
        with AlchemistClient(url, protocol) as client:
            return [
                client.generate_video(PROMPT, references=encoded, steps=steps, seed=s).latency_s
                for s in seeds
            ]

    shards = [list(range(i, requests, concurrency)) for i in range(concurrency)]
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = [t for shard in pool.map(worker, shards) for t in shard]
    return time.perf_counter() - start, latencies


def run_perf_analyzer(url: str, protocol: str, work: Path) -> None:
    binary = shutil.which("perf_analyzer")
    if binary is None:
        print("perf_analyzer: not installed (it ships in the Triton SDK container), skipped")
        return
    data = work / "perf_input.json"
    data.write_text(json.dumps({"data": [{"PROMPT": [PROMPT], "STEPS": [2]}]}))
    command = [binary, "-m", "video_alchemist", "-u", url, "-i", protocol, "--input-data", str(data)]
    command += ["--concurrency-range", "1:4"]
    print("$", " ".join(command))
    subprocess.run(command, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="small", choices=PRESET_NAMES, help="random-weight model size")
    parser.add_argument(
        "--checkpoint", type=Path, help="serve this checkpoint instead of a random-weight preset"
    )
    parser.add_argument("--steps", type=int, default=10, help="sampler steps per generation")
    parser.add_argument("--requests", type=int, default=8, help="requests per concurrency level")
    parser.add_argument("--concurrency", default="1,2,4", help="comma-separated client counts")
    parser.add_argument("--protocol", default="grpc", choices=("http", "grpc"))
    parser.add_argument("--instances", type=int, default=1, help="model instances in the server")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where both sides run")
    parser.add_argument(
        "--threads", type=int, help="torch threads, in-process and in the server (OMP_NUM_THREADS)"
    )
    args = parser.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by tritonserver and its Python stub
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="alchemist-bench-") as tmp:
        work = Path(tmp)
        checkpoint = args.checkpoint
        if checkpoint is None:
            torch.manual_seed(0)
            checkpoint = VideoAlchemist(preset(args.preset)).save_pretrained(work / "checkpoint")
        kind = "gpu" if args.device == "cuda" else "cpu"
        export_model_repository(
            checkpoint, work / "repository", instance_kind=kind, instance_count=args.instances
        )
        refs = reference_images()
        generator = Generator.from_pretrained(checkpoint, device=args.device)
        cfg = generator.config
        print(
            f"device: {device_name(args.device)}; preset {cfg.name}; "
            f"{cfg.video.frames}x{cfg.video.height}x{cfg.video.width}; {args.steps} steps; 2 entities; "
            f"protocol {args.protocol}; {args.instances} instance(s)"
        )
        config = ServerConfig(work / "repository", http_port=None, grpc_port=None, metrics_port=None)
        with LocalTritonServer(config) as server:
            url = server.grpc_url if args.protocol == "grpc" else server.http_url
            with AlchemistClient(url, args.protocol) as client:
                paired_latencies(generator, client, refs, args.steps, 2)  # warm-up
                base, served, served_mp4 = paired_latencies(
                    generator, client, refs, args.steps, args.requests
                )
            p50 = {
                name: statistics.median(v) for name, v in (("in", base), ("out", served), ("mp4", served_mp4))
            }
            ratio = p50["out"] / p50["in"]
            print(
                f"in-process p50 {p50['in'] * 1e3:.1f} ms | served p50 {p50['out'] * 1e3:.1f} ms | "
                f"served/in-process {ratio:.3f} (overhead {100 * (ratio - 1):+.1f}%, goal < +10%) | "
                f"served with MP4 p50 {p50['mp4'] * 1e3:.1f} ms ({p50['mp4'] / p50['in']:.3f})"
            )
            print(f"{'clients':>7} {'req/s':>8} {'p50 ms':>9} {'p99 ms':>9}")
            for concurrency in [int(c) for c in args.concurrency.split(",")]:
                wall, latencies = served_run(url, args.protocol, refs, args.steps, concurrency, args.requests)
                print(
                    f"{concurrency:>7} {len(latencies) / wall:>8.2f} {percentile(latencies, 50) * 1e3:>9.1f} "
                    f"{percentile(latencies, 99) * 1e3:>9.1f}"
                )
            run_perf_analyzer(url, args.protocol, work)


if __name__ == "__main__":
    main()
