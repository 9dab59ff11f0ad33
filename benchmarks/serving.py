"""Serving benchmark: the real tritonserver against an in-process `Generator.generate` of the same request.

Prints, for one preset on this machine and for each protocol: the in-process latency, the served
latency at concurrency 1 and their ratio (goal: server overhead under 5%), where the served time goes
by Triton's own per-request statistics (queue, model, and the rest: wire, HTTP/gRPC front end and
client), then throughput and p50/p99 latency for several concurrent clients. Runs NVIDIA's
perf_analyzer too when it is on PATH.

In-process and served calls of one seed run back to back, round after round, so that load from other
processes on a shared host hits them alike; the ratio is the median of the per-round ratios.

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
from dataclasses import dataclass

import numpy as np
import torch
import tritonclient.http

from components.export import export_model_repository
from model.alchemist import VideoAlchemist
from model.config import PRESET_NAMES, preset
from model.generator import Generator
from model.images import decode_rgb8
from serving import protocol as P
from serving.client import AlchemistClient
from serving.launcher import LocalTritonServer, ServerConfig
from serving.media import encode_mp4, encode_png

PROMPT = "a dog and a man walk on a beach"
MODEL = "video_alchemist"


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


@dataclass
class ServedCall:
    """One served request: the client's wall time and the server's own account of it."""

    latency_s: float
    queue_s: float  # in Triton's scheduler (the dynamic batcher's wait)
    model_s: float  # in the backend's `execute`: parsing, generation, MP4
    rest_s: float  # everything else: wire, HTTP/gRPC front end, tensor (de)serialization, client


def server_totals(stats: tritonclient.http.InferenceServerClient) -> dict[str, float]:
    """Cumulative seconds Triton's statistics extension reports for the model (success = whole request)."""
    model = stats.get_inference_statistics(MODEL)["model_stats"][0]["inference_stats"]
    return {key: int(model[key].get("ns", 0)) / 1e9 for key in ("queue", "compute_infer", "success")}


def served_call(client: AlchemistClient, stats, encoded, steps: int, seed: int, with_mp4: bool) -> ServedCall:
    before = server_totals(stats)
    latency = client.generate_video(
        PROMPT, references=encoded, steps=steps, seed=seed, with_mp4=with_mp4
    ).latency_s
    after = server_totals(stats)
    spent = {key: after[key] - before[key] for key in after}
    return ServedCall(latency, spent["queue"], spent["compute_infer"], latency - spent["success"])


# Before each timed call: the other process's OpenMP workers stop spinning on the shared cores.
SETTLE_S = 0.05


def paired_rounds(generator: Generator, clients: dict[str, AlchemistClient], stats, refs, steps: int, n: int):
    """Per round (one seed): the in-process latency of frames and of frames + MP4 and each protocol's served
    call for the same two outputs, back to back, so that load from other processes on a shared host hits them
    alike; each round starts one call later in that order, so no call always comes first or last. In-process
    decodes the same PNG files the server receives, so both sides do the same work."""
    # Files as an application would upload them; both sides decode them inside the measured time.
    encoded = {word: [encode_png(image) for image in images] for word, images in refs.items()}
    fps = P.ServingLimits().fps

    def in_process(seed: int, mp4: bool) -> float:
        start = time.perf_counter()
        images = {
            word: [decode_rgb8(data, f"reference of {word!r}") for data in files]
            for word, files in encoded.items()
        }
        video = generator.generate(PROMPT, images, steps=steps, seed=seed)
        if mp4:
            encode_mp4(video, fps=fps)
        return time.perf_counter() - start

    base: dict[bool, list[float]] = {False: [], True: []}
    served: dict[tuple[str, bool], list[ServedCall]] = {
        (protocol, mp4): [] for protocol in clients for mp4 in (False, True)
    }
    calls = [(None, mp4) for mp4 in base] + list(served)
    for seed in range(n):
        shift = seed % len(calls)
        for protocol, mp4 in calls[shift:] + calls[:shift]:
            time.sleep(SETTLE_S)
            if protocol is None:
                base[mp4].append(in_process(seed, mp4))
            else:
                served[protocol, mp4].append(served_call(clients[protocol], stats, encoded, steps, seed, mp4))
    return base, served


def report(base: dict[bool, list[float]], served: dict[tuple[str, bool], list[ServedCall]]) -> None:
    """Medians: latency, the per-round served/in-process ratio, and where each served millisecond went."""
    ms = 1e3
    print(
        f"in-process p50 {statistics.median(base[False]) * ms:.1f} ms (frames), "
        f"{statistics.median(base[True]) * ms:.1f} ms (frames + MP4) over {len(base[False])} rounds"
    )
    for (protocol, mp4), calls in served.items():
        ratio = statistics.median(call.latency_s / b for call, b in zip(calls, base[mp4]))
        median = {
            name: statistics.median(getattr(call, name) for call in calls) * ms
            for name in ("latency_s", "queue_s", "model_s", "rest_s")
        }
        what = "frames + MP4" if mp4 else "frames"
        print(
            f"{protocol:>4} {what:<12} p50 {median['latency_s']:.1f} ms | served/in-process {ratio:.3f} "
            f"(overhead {100 * (ratio - 1):+.1f}%, goal < +5%) | Triton queue {median['queue_s']:.1f} ms, "
            f"model {median['model_s']:.1f} ms, wire + front end + client {median['rest_s']:.1f} ms"
        )


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
    command = [binary, "-m", MODEL, "-u", url, "-i", protocol, "--input-data", str(data)]
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
    parser.add_argument(
        "--requests", type=int, default=8, help="interleaved rounds, and requests per concurrency level"
    )
    parser.add_argument("--concurrency", default="1,2,4", help="comma-separated client counts")
    parser.add_argument("--protocols", default="http,grpc", help="comma-separated: http, grpc")
    parser.add_argument("--instances", type=int, default=1, help="model instances in the server")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where both sides run")
    parser.add_argument(
        "--threads", type=int, help="torch threads, in-process and in the server (OMP_NUM_THREADS)"
    )
    args = parser.parse_args()
    protocols = args.protocols.split(",")
    if unknown := sorted(set(protocols) - {"http", "grpc"}):
        parser.error(f"--protocols {args.protocols}: unknown {', '.join(unknown)}; expected http and/or grpc")
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
            f"protocols {', '.join(protocols)}; {args.instances} instance(s)"
        )
        config = ServerConfig(work / "repository", http_port=None, grpc_port=None, metrics_port=None)
        with LocalTritonServer(config) as server:
            urls = {"http": server.http_url, "grpc": server.grpc_url}
            clients = {protocol: AlchemistClient(urls[protocol], protocol) for protocol in protocols}
            stats = tritonclient.http.InferenceServerClient(server.http_url)
            try:
                paired_rounds(generator, clients, stats, refs, args.steps, 2)  # warm-up
                report(*paired_rounds(generator, clients, stats, refs, args.steps, args.requests))
            finally:
                for client in clients.values():
                    client.close()
                stats.close()
            print(f"{'protocol':>8} {'clients':>7} {'req/s':>8} {'p50 ms':>9} {'p99 ms':>9}")
            for protocol in protocols:
                for concurrency in [int(c) for c in args.concurrency.split(",")]:
                    wall, latencies = served_run(
                        urls[protocol], protocol, refs, args.steps, concurrency, args.requests
                    )
                    print(
                        f"{protocol:>8} {concurrency:>7} {len(latencies) / wall:>8.2f} "
                        f"{percentile(latencies, 50) * 1e3:>9.1f} {percentile(latencies, 99) * 1e3:>9.1f}"
                    )
            for protocol in protocols:
                run_perf_analyzer(urls[protocol], protocol, work)


if __name__ == "__main__":
    main()
