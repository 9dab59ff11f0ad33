"""Shared data for the miner tests: a small embedded dataset, mined once per session."""

from pathlib import Path

import pytest

from components.embedded import generate_embedded_dataset
from components.mine import MinerConfig, mine_dataset

REAL_CLIPS = Path(__file__).resolve().parents[3] / "../shared/data/clips"


@pytest.fixture(scope="session")
def embedded(tmp_path_factory):
    return generate_embedded_dataset(tmp_path_factory.mktemp("embedded"), samples=8, seed=0, progress=False)


@pytest.fixture(scope="session")
def mined(embedded, tmp_path_factory):
    out = tmp_path_factory.mktemp("mined")
    config = MinerConfig(workers=1, shard_size=4)
    return mine_dataset(str(embedded.videos), str(embedded.captions), str(out), config, progress=False)


@pytest.fixture(scope="session")
def real_clips():
    if not (REAL_CLIPS / "manifest.jsonl").is_file():
        pytest.skip(f"real clips not found at {REAL_CLIPS}")
    return REAL_CLIPS.resolve()
