"""The encode-once cache: a batch from the cache gives the loss the same batch gives from raw clips."""

from __future__ import annotations

import torch

from components.configuration import preset_config
from components.train.config import AugmentConfig, DataConfig
from components.train.dataset import ManifestDataset, collate
from components.train.features import FeatureCacheError, FeatureDataset, encode_dataset
from components.train.preflight import sample_size
from components.weights import build_model as build


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    model = build(preset_config("tiny", {"video": {"frames": 4, "height": 16, "width": 16}}))
    model.set_stage(2)
    return model.eval()


def test_a_cached_batch_gives_the_loss_of_the_raw_batch(mined_dataset, tmp_path):
    model = tiny_model()
    size = sample_size(DataConfig(), model.config)
    result = encode_dataset(model, mined_dataset, tmp_path / "features", size, progress=False)
    assert result.samples == 6 and sorted(result.skipped) == ["broken-video", "missing-ref"]

    raw = ManifestDataset(mined_dataset, size, augment=AugmentConfig.disabled(), p_background=1.0)
    cached = FeatureDataset(result.folder, model, mined_dataset, size)
    ids = [cached.items[i][1] for i in range(3)]
    raw_items = [raw[(0, next(i for i, r in enumerate(raw.rows) if r["sample_id"] == sid))] for sid in ids]
    raw_batch = collate(raw_items).training
    cached_batch = cached.collate_batch([cached[(0, i)] for i in range(3)]).training
    for seed in range(4):  # dropout draws differ per seed: text, references and self-conditioning paths
        with torch.no_grad():
            a = model.training_loss(raw_batch, torch.Generator().manual_seed(seed))
            b = model.training_loss(cached_batch, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_cache_of_other_encoders_is_refused(mined_dataset, tmp_path):
    model = tiny_model()
    size = sample_size(DataConfig(), model.config)
    folder = encode_dataset(model, mined_dataset, tmp_path / "features", size, progress=False).folder
    other = tiny_model(seed=1)  # the same preset with other random encoder weights
    try:
        FeatureDataset(folder, other, mined_dataset, size)
    except FeatureCacheError as error:
        assert "other data, encoders or sample size" in str(error)
    else:
        raise AssertionError("a cache of other encoders was accepted")


def test_encoding_resumes_with_the_shards_already_written(mined_dataset, tmp_path):
    model = tiny_model()
    size = sample_size(DataConfig(), model.config)
    first = encode_dataset(model, mined_dataset, tmp_path / "f", size, shard_size=2, progress=False)
    shard = first.folder / "shard-00000.safetensors"
    stamp = shard.stat().st_mtime_ns
    (first.folder / "shard-00002.safetensors").unlink()  # as if killed while writing the last shard
    again = encode_dataset(model, mined_dataset, tmp_path / "f", size, shard_size=2, progress=False)
    assert shard.stat().st_mtime_ns == stamp and again.samples == first.samples
