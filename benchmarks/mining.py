"""Miner vs ground truth on the embedded dataset, and yield on the real clips.

Prints, for the offline default (motion segmentation), the mask IoU per entity against the exact ground truth
(mean and by kind), the background PSNR against the clean background for both inpainting backends, and
clips per second; the existing-mask backend fed the ground truth is the upper bound run in the same process.
Then mines the real clips in ../shared/data/clips (read in place) and reports yield and reject reasons.

    .venv/bin/python benchmarks/mining.py [--samples 24] [--seed 0] [--workers 2] [--out work/benchmarks/mining]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from components.embedded import generate_embedded_dataset
from components.embedded.measure import measure_mining
from components.mine import MinerConfig, mine_dataset

REAL_CLIPS = Path(__file__).resolve().parents[1] / "../shared/data/clips"


def _mine(dataset, out: Path, config: MinerConfig):
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    summary = mine_dataset(str(dataset.videos), str(dataset.captions), str(out), config, progress=False)
    return summary, time.perf_counter() - started


def embedded_benchmark(root: Path, samples: int, seed: int, workers: int) -> None:
    started = time.perf_counter()
    dataset = generate_embedded_dataset(root / "embedded", samples=samples, seed=seed, progress=False)
    print(
        f"embedded dataset: {samples} clips (seed {seed}) generated in {time.perf_counter() - started:.1f}s"
    )
    base = MinerConfig(workers=workers, shard_size=max(1, samples // (2 * workers)))
    runs = {
        "motion + temporal inpaint (default)": base,
        "motion + opencv inpaint": replace(base, inpaint="opencv"),
        "ground-truth masks (upper bound)": replace(
            base, segmenter="masks", masks_dir=str(dataset.ground_truth / "masks")
        ),
    }
    rows = []
    for name, config in runs.items():
        summary, seconds = _mine(dataset, root / name.split()[0].replace("-", "") / config.inpaint, config)
        entities, backgrounds = measure_mining(dataset.root, summary.out)
        by_kind = entities.groupby("kind").iou.mean()
        rows.append(
            {
                "run": name,
                "kept": f"{summary.samples}/{samples}",
                "iou": entities.iou.mean(),
                "iou_fg": entities[entities.kind != "background"].iou.mean(),
                "iou_subject": by_kind.get("subject"),
                "iou_object": by_kind.get("object"),
                "iou_background": by_kind.get("background"),
                "bound": entities[entities.kind != "background"].bound.mean(),
                "psnr_db": backgrounds.background_psnr.mean(),
                "clips_per_s": samples / seconds,
            }
        )
        rejects = pd.read_parquet(summary.rejects_path)
        if len(rejects):
            print(f"  {name}: rejects by reason:")
            for reason, count in (
                rejects.reason.str.replace(r"\[.*\]", "[...]", regex=True).value_counts().items()
            ):
                print(f"    {count} x {reason}")
    table = pd.DataFrame(rows).set_index("run")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    default, upper = table.iloc[0], table.iloc[2]
    print(
        f"default / upper bound: IoU {default.iou / upper.iou:.2f}, PSNR {default.psnr_db / upper.psnr_db:.2f}"
    )


def real_benchmark(root: Path, clips: Path, workers: int, max_side: int) -> None:
    if not (clips / "manifest.jsonl").is_file():
        print(f"real clips: none at {clips}, skipped")
        return
    for mode in ("reject", "drop"):
        config = MinerConfig(
            workers=workers, shard_size=4, max_side=max_side, frame_stride=2, on_missing_entity=mode
        )
        out = root / f"real-{mode}"
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        summary = mine_dataset(str(clips), str(clips / "manifest.jsonl"), str(out), config, progress=False)
        seconds = time.perf_counter() - started
        total = summary.samples + summary.rejected
        print(
            f"real clips, on_missing_entity={mode}, max_side={max_side}: kept {summary.samples}/{total} "
            f"({total / seconds:.2f} clips/s)"
        )
        for row in pd.read_parquet(summary.rejects_path).itertuples():
            print(f"  rejected {row.sample_id} [{row.stage}]: {row.reason}")
        for row in pd.read_parquet(summary.manifest_path).itertuples():
            words = ", ".join(f"{e['word']}({e['kind'][0]}, {sum(e['areas']) / 3:.3f})" for e in row.entities)
            print(f"  kept {row.sample_id}: {words}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=24, help="embedded clips to generate")
    parser.add_argument("--seed", type=int, default=0, help="embedded dataset seed")
    parser.add_argument("--workers", type=int, default=2, help="miner worker processes")
    parser.add_argument("--out", type=Path, default=Path("work/benchmarks/mining"), help="scratch folder")
    parser.add_argument(
        "--clips", type=Path, default=REAL_CLIPS, help="real clips folder with manifest.jsonl"
    )
    parser.add_argument("--max-side", type=int, default=256, help="resize real clips to this longest side")
    args = parser.parse_args()
    print(f"device: CPU ({os.cpu_count()} cores), {platform.platform()}, python {platform.python_version()}")
    embedded_benchmark(args.out, args.samples, args.seed, args.workers)
    real_benchmark(args.out, args.clips.resolve(), args.workers, args.max_side)


if __name__ == "__main__":
    main()
