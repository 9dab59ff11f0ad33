"""The pipeline's way of mining (plan shards, mine each apart, merge) gives the dataset one run gives."""

import json

import pandas as pd
import pytest

from components.mine import MinerConfig, mine_dataset
from components.mine.run import merge_datasets, mine_shard, plan_shards


def test_shards_mined_apart_merge_into_the_dataset_of_one_run(embedded, tmp_path):
    captions = tmp_path / "captions.jsonl"
    lines = embedded.captions.read_text().splitlines()[:3]
    captions.write_text("\n".join([*lines, "not json"]) + "\n")
    config = MinerConfig(workers=1)
    whole = mine_dataset(str(embedded.videos), str(captions), str(tmp_path / "whole"), config, progress=False)

    shards = plan_shards(str(embedded.videos), str(captions), num_shards=2)
    assert [json.loads(s)["index"] for s in shards] == [0, 1]
    parts = [
        mine_shard(str(embedded.videos), s, str(tmp_path / f"part{i}"), config).out
        for i, s in enumerate(shards)
    ]
    merged = merge_datasets(parts, tmp_path / "merged", config)

    for table in ("manifest.parquet", "rejects.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(whole.out / table), pd.read_parquet(merged.out / table))
    assert pd.read_parquet(merged.rejects_path).stage.tolist().count("captions") == 1  # once, not per shard
    one, apart = (json.loads(s.dataset_json.read_text()) for s in (whole, merged))
    assert apart.pop("shards") == {"total": 2, "skipped": 0} and one.pop("shards") == {
        "total": 1,
        "skipped": 0,
    }
    assert apart == one and apart["inputs"] == {"videos": str(embedded.videos), "captions": str(captions)}
    assert all((merged.out / p).is_file() for p in pd.read_parquet(merged.manifest_path).video_path)
    with pytest.raises(ValueError, match="num_shards=0"):
        plan_shards(str(embedded.videos), str(captions), num_shards=0)
