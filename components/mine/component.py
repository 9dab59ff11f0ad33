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
    """The caption records in `num_shards` shards. Runs uncached on every pipeline run: it is what notices
    that the data changed. `captions` "" means `<data>/captions.jsonl`."""
    from components.mine.run import plan_shards as plan

    return plan(data, captions, num_shards)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def mine_shard(data: str, shard: str, miner: dict, dataset: Output[Dataset]):
    """Mine one shard's videos into a dataset folder (manifest.parquet, rejects.parquet, media/)."""
    import json

    from components.mine import MinerConfig
    from components.mine.run import mine_shard as mine

    summary = mine(data, shard, dataset.path, MinerConfig(**miner))
    index = json.loads(shard)["index"]
    dataset.metadata.update(shard=index, samples=summary.samples, rejected=summary.rejected)
    print(f"shard {index}: {summary.samples} samples, {summary.rejected} rejected")


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def merge_shards(parts: Input[List[Dataset]], miner: dict, dataset: Output[Dataset]):  # noqa: UP006
    """One dataset from the shards, splits assigned over the whole set."""
    from pathlib import Path

    from components.mine import MinerConfig
    from components.mine.run import merge_datasets

    ordered = [Path(p.path) for p in sorted(parts, key=lambda p: p.metadata.get("shard", 0))]
    summary = merge_datasets(ordered, Path(dataset.path), MinerConfig(**miner))
    dataset.metadata.update(samples=summary.samples, rejected=summary.rejected)
    print(f"merged {len(ordered)} shards: {summary.samples} samples, {summary.rejected} rejected")
