"""KFP steps for mining: plan shards, mine each shard in parallel (dsl.ParallelFor), merge the shards.

Each shard travels as a JSON string (its caption records plus a fingerprint of its video files), so the
step cache re-mines exactly the shards whose captions or videos changed.
"""

from typing import List  # noqa: UP035 - KFP reads the annotation and needs typing.List

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def plan_shards(data: str, captions: str, num_shards: int) -> List[str]:  # noqa: UP006
    """Split the caption records into `num_shards` shards, each with the size and time (or S3 ETag) of its videos.

    Runs uncached on every pipeline run: it is what notices that the data changed. `captions` "" means
    `<data>/captions.jsonl`.
    """
    import json
    import os
    from pathlib import Path

    from components.mine.captions import load_captions
    from components.mine.run import caption_reject
    from components.storage import S3Uri, is_s3, materialize, s3_client

    if num_shards < 1:
        raise ValueError(f"num_shards={num_shards} must be >= 1")
    captions_uri = captions or f"{data.rstrip('/')}/captions.jsonl"
    loaded = load_captions(materialize(captions_uri), name=captions_uri)
    records = loaded.records
    refused = [caption_reject(problem, captions_uri) for problem in loaded.problems]
    if not records:
        raise ValueError(f"captions file {captions_uri} lists no video that can be mined: {refused[:3]}")
    if is_s3(data):
        location = S3Uri.parse(data.rstrip("/") + "/")
        pages = (
            s3_client().get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=location.key)
        )
        stamps = {
            o["Key"][len(location.key) :]: o["ETag"] for page in pages for o in page.get("Contents", [])
        }
    else:
        stamps = {}
        for record in records:
            path = Path(data) / record.file
            stat = os.stat(path) if path.is_file() else None
            stamps[record.file] = [stat.st_size, stat.st_mtime_ns] if stat else None
    count = min(num_shards, len(records))
    shards = []
    for index in range(count):
        part = records[index::count]
        shards.append(
            json.dumps(
                {
                    "index": index,
                    "records": [{"file": r.file, "caption": r.caption} for r in part],
                    "inputs": {r.file: stamps.get(r.file) for r in part},
                    "rejects": refused if index == 0 else [],  # caption records refused here, reported once
                },
                sort_keys=True,
            )
        )
    print(f"{len(records)} captioned videos in {count} shards; {len(refused)} caption records refused")
    return shards


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def mine_shard(data: str, shard: str, miner: dict, dataset: Output[Dataset]):
    """Mine one shard's videos into a dataset folder (manifest.parquet, rejects.parquet, media/)."""
    import json
    import tempfile
    from pathlib import Path

    from components.mine import MinerConfig, mine_dataset

    spec = json.loads(shard)
    with tempfile.TemporaryDirectory() as tmp:
        captions = Path(tmp) / "captions.jsonl"
        captions.write_text("".join(json.dumps(r) + "\n" for r in spec["records"]))
        summary = mine_dataset(
            data, str(captions), dataset.path, MinerConfig(**miner), caption_rejects=spec.get("rejects")
        )
    dataset.metadata.update(shard=spec["index"], samples=summary.samples, rejected=summary.rejected)
    print(f"shard {spec['index']}: {summary.samples} samples, {summary.rejected} rejected")


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def merge_shards(parts: Input[List[Dataset]], miner: dict, dataset: Output[Dataset]):  # noqa: UP006
    """One dataset from the shards: media folders side by side, manifests and rejects concatenated, splits
    assigned over the whole set (a split depends on every sample id, so it is decided here, not per shard)."""
    import json
    import shutil
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    from components.mine import MinerConfig, assign_splits

    config = MinerConfig(**miner)
    out = Path(dataset.path)
    (out / "media").mkdir(parents=True)
    manifests, rejects, shard_meta = [], [], []
    for part in sorted(parts, key=lambda p: p.metadata.get("shard", 0)):
        root = Path(part.path)
        if (root / "media").is_dir():
            shutil.copytree(root / "media", out / "media", dirs_exist_ok=True)
        manifests.append(pq.read_table(root / "manifest.parquet"))
        rejects.append(pq.read_table(root / "rejects.parquet"))
        shard_meta.append(json.loads((root / "dataset.json").read_text()))
    table = pa.concat_tables(manifests).sort_by("sample_id")
    splits = assign_splits(table.column("sample_id").to_pylist(), config.val_fraction, config.test_fraction)
    table = table.set_column(table.schema.get_field_index("split"), "split", pa.array(splits, pa.string()))
    rejected = pa.concat_tables(rejects).sort_by("sample_id")
    pq.write_table(table, out / "manifest.parquet")
    pq.write_table(rejected, out / "rejects.parquet")
    counts = {"samples": table.num_rows, "rejected": rejected.num_rows}
    meta = {
        "inputs": [m["inputs"] for m in shard_meta],
        "config": config.to_dict(),
        "counts": {**counts, "splits": {s: splits.count(s) for s in ("train", "val", "test")}},
        "shards": {"total": len(shard_meta)},
    }
    (out / "dataset.json").write_text(json.dumps(meta, indent=2))
    dataset.metadata.update(counts)
    print(f"merged {len(shard_meta)} shards: {counts['samples']} samples, {counts['rejected']} rejected")
