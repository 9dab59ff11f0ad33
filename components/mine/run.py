"""Mine a whole dataset: shards in parallel processes, per-shard done files, one manifest at the end.

A shard's done file records a fingerprint of its inputs and of the config fields that shape its output, so a
re-run skips shards that are finished and unchanged and redoes the rest. Samples fail one at a time into
rejects; only a broken configuration (a backend that cannot load) stops the run.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from components.manifest import MANIFEST, REJECTS, write_table
from components.mine.backends import build_extractor, build_fill, build_segmenter
from components.mine.captions import CaptionProblem, load_captions
from components.mine.config import MinerConfig
from components.mine.sample import SampleInput, SampleRejected, mine_sample
from components.storage import S3Uri, is_s3, materialize, s3_client


@dataclass(frozen=True)
class MiningSummary:
    """What a run produced and where."""

    out: Path
    manifest_path: Path
    rejects_path: Path
    dataset_json: Path
    samples: int
    rejected: int
    shards: int
    shards_skipped: int
    seconds: float


def mine_dataset(
    videos: str,
    captions: str,
    out: str,
    config: MinerConfig | None = None,
    progress: bool = True,
    caption_rejects: list[dict] | None = None,
    captions_name: str | None = None,
) -> MiningSummary:
    """Mine the captioned videos in `videos` (a folder or s3:// prefix) into the dataset folder `out`.

    `captions` (a path or s3:// URI) is a JSONL or CSV of `file, caption` (file relative to `videos`) or an
    MSR-VTT annotation JSON; its unreadable records go to rejects (stage "captions"), as do
    `caption_rejects` (rows of `caption_reject`) found by an earlier step that read the file.
    `captions_name` (default: `captions`) is how rejects and dataset.json name the captions file.
    """
    config = config or MinerConfig()
    started = time.perf_counter()
    videos_dir = materialize(videos, what="videos folder", folder=True)
    root = Path(out)
    (root / "shards").mkdir(parents=True, exist_ok=True)
    captions_name = captions_name or str(captions)
    items, refused = _inputs(videos, videos_dir, captions, captions_name)
    shards = [items[i : i + config.shard_size] for i in range(0, len(items), config.shard_size)]
    todo, skipped = [], 0
    for index, shard in enumerate(shards):
        if _is_done(root, index, _fingerprint(shard, config)):
            skipped += 1
        else:
            todo.append(index)
    bar = tqdm(total=sum(len(shards[i]) for i in todo), desc="mining", unit="clip", disable=not progress)
    crashed: list[dict] = refused + list(caption_rejects or [])
    if config.workers == 1 or len(todo) <= 1:
        for index in todo:
            _mine_shard(index, shards[index], config, root, bar.update)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=config.workers, mp_context=context) as pool:
            futures = {pool.submit(_mine_shard, i, shards[i], config, root): i for i in todo}
            for future in as_completed(futures):
                index = futures[future]
                try:
                    future.result()
                except BrokenProcessPool as error:
                    crashed += [
                        _reject(item, "internal", f"worker process crashed: {error}")
                        for item in shards[index]
                    ]
                bar.update(len(shards[index]))
    bar.close()
    manifests, rejects = [], [pa.Table.from_pylist(crashed, schema=REJECTS)]
    for index in range(len(shards)):
        manifest, rejects_path, done = _shard_paths(root, index)
        if done.is_file():
            manifests.append(pq.read_table(manifest, schema=MANIFEST))
            rejects.append(pq.read_table(rejects_path, schema=REJECTS))
    inputs = {"videos": str(videos), "captions": captions_name}
    shard_counts = {"total": len(shards), "skipped": skipped}
    return _write_dataset(root, manifests, rejects, config, inputs, shard_counts, started)


def _inputs(videos: str, videos_dir: Path, captions: str, name: str) -> tuple[list[SampleInput], list[dict]]:
    """Samples to mine, and reject rows for the caption records that cannot be mined."""
    loaded = load_captions(materialize(captions, what="captions file"), name=name)
    used: set[str] = set()
    items = []
    for record in loaded.records:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(record.file).with_suffix("").as_posix())
        sample_id, copy = stem, 0
        while sample_id in used:  # "a b.mp4", "a_b.mp4" and "a_b-1.mp4" must not share a media folder
            copy += 1
            sample_id = f"{stem}-{copy}"
        used.add(sample_id)
        source = f"{str(videos).rstrip('/')}/{record.file}"
        items.append(SampleInput(sample_id, videos_dir / record.file, record.caption, source))
    return items, [caption_reject(problem, name) for problem in loaded.problems]


def caption_reject(problem: CaptionProblem, captions: str) -> dict:
    """The rejects row of a caption record that cannot be mined; its id is where it is in the file."""
    return {"sample_id": problem.where, "source": captions, "stage": "captions", "reason": problem.reason}


def _fingerprint(shard: list[SampleInput], config: MinerConfig) -> str:
    inputs = [
        (
            i.sample_id,
            str(i.video_path),
            i.caption,
            i.video_path.stat().st_size if i.video_path.is_file() else -1,
        )
        for i in shard
    ]
    blob = json.dumps({"config": config.fingerprint_fields(), "inputs": inputs}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _shard_paths(root: Path, index: int) -> tuple[Path, Path, Path]:
    base = root / "shards" / f"shard-{index:05d}"
    return (
        base.with_suffix(".manifest.parquet"),
        base.with_suffix(".rejects.parquet"),
        base.with_suffix(".done"),
    )


def _is_done(root: Path, index: int, fingerprint: str) -> bool:
    manifest, rejects, done = _shard_paths(root, index)
    if not (done.is_file() and manifest.is_file() and rejects.is_file()):
        return False
    return json.loads(done.read_text()).get("fingerprint") == fingerprint


def _mine_shard(
    index: int, shard: list[SampleInput], config: MinerConfig, root: Path, on_sample=None
) -> None:
    """Mine one shard and write its parquet files, then its done file (last, so a crash leaves none)."""
    import cv2

    cv2.setNumThreads(1)
    extractor, segmenter, fill = build_extractor(config), build_segmenter(config), build_fill(config)
    rows, rejects = [], []
    for item in shard:
        try:
            rows.append(mine_sample(item, config, extractor, segmenter, root, fill))
        except SampleRejected as rejected:
            rejects.append(_reject(item, rejected.stage, rejected.reason))
        except Exception as error:  # one sample's unexpected failure must not cost the others
            rejects.append(_reject(item, "internal", f"{type(error).__name__}: {error}"))
        if on_sample is not None:
            on_sample(1)
    manifest, rejects_path, done = _shard_paths(root, index)
    write_table([{**row, "split": ""} for row in rows], MANIFEST, manifest)
    write_table(rejects, REJECTS, rejects_path)
    record = {"fingerprint": _fingerprint(shard, config), "samples": len(rows), "rejected": len(rejects)}
    done.write_text(json.dumps(record))


def _reject(item: SampleInput, stage: str, reason: str) -> dict:
    """Every reason names its file: the video's, unless the reason already names it."""
    if item.source not in reason and str(item.video_path) not in reason:
        reason = f"{item.source}: {reason}"
    return {"sample_id": item.sample_id, "source": item.source, "stage": stage, "reason": reason}


def plan_shards(data: str, captions: str, num_shards: int) -> list[str]:
    """The caption records in `num_shards` shards (JSON), each with the size and time (or S3 ETag) of its videos,
    so that a pipeline's step cache re-mines exactly the shards whose captions or videos changed.

    `captions` "" means `<data>/captions.jsonl`. Caption records that cannot be mined travel in shard 0's
    rejects, so they are reported once.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards={num_shards} must be >= 1")
    captions = captions or f"{data.rstrip('/')}/captions.jsonl"
    loaded = load_captions(materialize(captions, what="captions file"), name=captions)
    records = loaded.records
    refused = [caption_reject(problem, captions) for problem in loaded.problems]
    if not records:
        raise ValueError(f"captions file {captions} lists no video that can be mined: {refused[:3]}")
    stamps = _video_stamps(data, [record.file for record in records])
    count = min(num_shards, len(records))
    shards = []
    for index in range(count):
        part = records[index::count]
        spec = {
            "index": index,
            "captions": captions,
            "records": [{"file": r.file, "caption": r.caption} for r in part],
            "inputs": {r.file: stamps.get(r.file) for r in part},
            "rejects": refused if index == 0 else [],
        }
        shards.append(json.dumps(spec, sort_keys=True))
    print(f"{len(records)} captioned videos in {count} shards; {len(refused)} caption records refused")
    return shards


def _video_stamps(data: str, files: list[str]) -> dict[str, object]:
    """What tells a changed video apart: its S3 ETag, or its local size and modification time."""
    if is_s3(data):
        location = S3Uri.parse(data.rstrip("/") + "/")
        paginator = s3_client().get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=location.bucket, Prefix=location.key)
        return {o["Key"][len(location.key) :]: o["ETag"] for page in pages for o in page.get("Contents", [])}
    stats = {file: (Path(data) / file).stat() if (Path(data) / file).is_file() else None for file in files}
    return {file: [stat.st_size, stat.st_mtime_ns] if stat else None for file, stat in stats.items()}


def mine_shard(data: str, shard: str, out: str, config: MinerConfig) -> MiningSummary:
    """Mine one shard of `plan_shards` into the dataset folder `out`."""
    spec = json.loads(shard)
    with tempfile.TemporaryDirectory() as tmp:
        captions = Path(tmp) / "captions.jsonl"
        captions.write_text("".join(json.dumps(r) + "\n" for r in spec["records"]))
        return mine_dataset(
            data, str(captions), out, config, caption_rejects=spec["rejects"], captions_name=spec["captions"]
        )


def merge_datasets(parts: list[Path], out: Path, config: MinerConfig) -> MiningSummary:
    """One dataset from datasets mined apart (the pipeline's shards): media folders side by side, manifests
    and rejects concatenated, splits assigned over the whole set (a split depends on every sample id)."""
    started = time.perf_counter()
    metas = [json.loads((Path(part) / "dataset.json").read_text()) for part in parts]
    if not metas or any(meta["inputs"] != metas[0]["inputs"] for meta in metas):
        raise ValueError(f"datasets to merge come from different inputs: {[m['inputs'] for m in metas]}")
    (out / "media").mkdir(parents=True, exist_ok=True)
    for part in map(Path, parts):
        if (part / "media").is_dir():
            shutil.copytree(part / "media", out / "media", dirs_exist_ok=True)
    manifests = [pq.read_table(Path(part) / "manifest.parquet", schema=MANIFEST) for part in parts]
    rejects = [pq.read_table(Path(part) / "rejects.parquet", schema=REJECTS) for part in parts]
    shard_counts = {k: sum(meta["shards"][k] for meta in metas) for k in ("total", "skipped")}
    return _write_dataset(out, manifests, rejects, config, metas[0]["inputs"], shard_counts, started)


def _write_dataset(
    root: Path,
    manifests: list[pa.Table],
    rejects: list[pa.Table],
    config: MinerConfig,
    inputs: dict[str, str],
    shards: dict[str, int],
    started: float,
) -> MiningSummary:
    """The dataset's top level: manifest with splits and rejects (both sorted by sample id), dataset.json."""
    table = pa.concat_tables(manifests) if manifests else MANIFEST.empty_table()
    table = table.sort_by("sample_id")
    splits = assign_splits(table.column("sample_id").to_pylist(), config.val_fraction, config.test_fraction)
    table = table.set_column(table.schema.get_field_index("split"), "split", pa.array(splits, pa.string()))
    rejected = pa.concat_tables(rejects).sort_by("sample_id")
    manifest_path, rejects_path = root / "manifest.parquet", root / "rejects.parquet"
    pq.write_table(table, manifest_path)
    pq.write_table(rejected, rejects_path)
    split_counts = {s: splits.count(s) for s in ("train", "val", "test")}
    meta = {
        "inputs": inputs,
        "config": config.to_dict(),
        "counts": {"samples": table.num_rows, "rejected": rejected.num_rows, "splits": split_counts},
        "rejects_by_stage": dict(Counter(rejected.column("stage").to_pylist())),
        "shards": shards,
    }
    dataset_json = root / "dataset.json"
    dataset_json.write_text(json.dumps(meta, indent=2))
    counts = (table.num_rows, rejected.num_rows, shards["total"], shards["skipped"])
    return MiningSummary(
        root, manifest_path, rejects_path, dataset_json, *counts, time.perf_counter() - started
    )


def assign_splits(sample_ids: list[str], val_fraction: float, test_fraction: float) -> list[str]:
    """Split by rank of a hash of the sample id: stable for a given set, at least one val and test sample
    once there are three samples (when the fraction is non-zero)."""
    n = len(sample_ids)
    order = sorted(range(n), key=lambda i: hashlib.sha256(sample_ids[i].encode()).hexdigest())

    def count(fraction: float) -> int:
        return 0 if fraction == 0 or n < 3 else max(1, round(n * fraction))

    n_test, n_val = count(test_fraction), count(val_fraction)
    splits = ["train"] * n
    for rank, i in enumerate(order):
        if rank < n_test:
            splits[i] = "test"
        elif rank < n_test + n_val:
            splits[i] = "val"
    return splits
