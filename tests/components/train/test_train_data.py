"""Data side of training: augmentations, manifest dataset, sampler positions, schedule, DeepSpeed config."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from components.manifest import ManifestError
from components.train.augment import augment_reference, degrade_resolution, warp_affine
from components.train.config import AugmentConfig, DataConfig, OptimConfig, TrainConfig, TrainConfigError
from components.train.dataset import ManifestDataset, SampleSize, collate
from components.train.engine import DeepSpeedConfigError, resolve_ds_config
from components.train.sampler import ResumableSampler
from components.train.schedule import warmup_cosine

SIZE = SampleSize(frames=4, height=16, width=24, reference_size=24, max_entities=4, max_references=3)


def checker(side: int = 32) -> np.ndarray:
    y, x = np.mgrid[:side, :side]
    image = np.zeros((side, side, 3), np.float32)
    image[..., 0] = ((x // 4 + y // 4) % 2).astype(np.float32)
    image[..., 1] = x / side
    image[..., 2] = 0.5
    return image


def test_each_augmentation_changes_the_image_and_disabled_changes_nothing() -> None:
    image = checker()
    rng = np.random.default_rng(0)
    assert np.array_equal(augment_reference(image, AugmentConfig.disabled(), rng), image)
    only = {
        "p_resolution": AugmentConfig(p_resolution=1, p_color=0, p_flip=0, p_shear=0, p_rotate=0),
        "p_color": AugmentConfig(p_resolution=0, p_color=1, p_flip=0, p_shear=0, p_rotate=0),
        "p_flip": AugmentConfig(p_resolution=0, p_color=0, p_flip=1, p_shear=0, p_rotate=0),
        "p_shear": AugmentConfig(p_resolution=0, p_color=0, p_flip=0, p_shear=1, p_rotate=0),
        "p_rotate": AugmentConfig(p_resolution=0, p_color=0, p_flip=0, p_shear=0, p_rotate=1),
    }
    for name, cfg in only.items():
        out = augment_reference(image, cfg, np.random.default_rng(1))
        assert out.shape == image.shape and out.dtype == np.float32, name
        assert 0.0 <= out.min() and out.max() <= 1.0, name
        assert np.abs(out - image).mean() > 1e-3, f"{name} left the image unchanged"
    flipped = augment_reference(image, only["p_flip"], np.random.default_rng(1))
    assert np.array_equal(flipped, image[:, ::-1])


def test_augmentation_is_a_function_of_the_seed() -> None:
    cfg = AugmentConfig(p_resolution=1, p_color=1, p_flip=0.5, p_shear=1, p_rotate=1)
    a = augment_reference(checker(), cfg, np.random.default_rng([3, 1]))
    b = augment_reference(checker(), cfg, np.random.default_rng([3, 1]))
    c = augment_reference(checker(), cfg, np.random.default_rng([3, 2]))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_resolution_degradation_removes_detail_and_warp_fills_with_corner_colour() -> None:
    image = checker()
    blurred = degrade_resolution(image, scale=0.25, sigma=1.0)
    # the 4-pixel checkerboard of the red channel is gone: its contrast collapses towards the mean
    assert blurred[..., 0].std() < 0.5 * image[..., 0].std()
    framed = np.zeros((32, 32, 3), np.float32)
    framed[8:24, 8:24] = 1.0
    rotated = warp_affine(framed, angle_degrees=30, shear_degrees=10)
    assert rotated[0, 0].tolist() == [0.0, 0.0, 0.0] and rotated[16, 16].tolist() == [1.0, 1.0, 1.0]


def test_dataset_decodes_clip_and_references(mined_dataset: Path) -> None:
    dataset = ManifestDataset(mined_dataset, SIZE, augment=None)
    sample_id, sample = dataset[(0, 0)]
    assert sample_id == "s0" and sample is not None
    assert sample.video.shape == (3, 4, 16, 24)
    assert -1.0 <= sample.video.min() and sample.video.max() <= 1.0
    # the red square (220, 40, 40) moves right: its red-minus-green mass shifts right over time
    redness = (sample.video[0] - sample.video[1]).mean(dim=1)  # [T, W]
    centre = (redness * torch.arange(24)).sum(1) / redness.sum(1)
    assert centre[-1] > centre[0] + 2
    ((word, refs),) = sample.entities
    assert word == "cat" and refs.shape == (1, 3, 24, 24)
    assert refs[0, 0].max() > 0.8 and refs[0, 1].max() < 0.3  # the red crop
    assert sample.background is not None and sample.background.shape == (1, 3, 24, 24)


def test_corrupt_and_missing_files_are_skipped_with_a_warning(
    mined_dataset: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dataset = ManifestDataset(mined_dataset, SIZE, augment=AugmentConfig())
    ids = [row["sample_id"] for row in dataset.rows]
    broken, missing = ids.index("broken-video"), ids.index("missing-ref")
    with caplog.at_level(logging.WARNING):
        items = [dataset[(0, i)] for i in (0, broken, missing, 1)]
    assert [s is None for _, s in items] == [False, True, True, False]
    assert "broken-video" in caplog.text and "nope.png" in caplog.text
    batch = collate(items)
    assert batch.sample_ids == ["s0", "s1"] and batch.skipped == ["broken-video", "missing-ref"]
    assert batch.num_indices == 4 and batch.training.video.shape == (2, 3, 4, 16, 24)
    assert collate(items[1:3]).training is None


def test_clip_cache_returns_the_decoded_frames(mined_dataset: Path, tmp_path: Path) -> None:
    plain = ManifestDataset(mined_dataset, SIZE, augment=None)
    cached = ManifestDataset(mined_dataset, SIZE, augment=None, cache_dir=tmp_path)
    first = cached.clip(cached.rows[2])
    assert len(list(tmp_path.glob("*.npy"))) == 1
    assert np.array_equal(first, plain.clip(plain.rows[2]))
    assert np.array_equal(cached.clip(cached.rows[2]), first)


def test_manifest_errors_name_the_problem(tmp_path: Path, mined_dataset: Path) -> None:
    with pytest.raises(ManifestError, match="manifest.parquet not found"):
        ManifestDataset(tmp_path, SIZE)
    with pytest.raises(ManifestError, match="no rows for split='val'"):
        ManifestDataset(mined_dataset, SIZE, split="val")


def test_sampler_resumes_mid_epoch_and_shards_are_disjoint() -> None:
    full = list(ResumableSampler(10, seed=5))
    resumed = ResumableSampler(10, seed=5)
    resumed.set_position(0, 4)
    assert list(resumed) == full[4:]
    assert [i for _, i in full] != list(range(10)) and sorted(i for _, i in full) == list(range(10))
    next_epoch = ResumableSampler(10, seed=5)
    next_epoch.set_position(1, 0)
    assert [i for _, i in next_epoch] != [i for _, i in full] and all(e == 1 for e, _ in next_epoch)
    ranks = [list(ResumableSampler(10, seed=5, rank=r, world_size=3)) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1  # equal counts keep ranks in lockstep
    assert set().union(*({i for _, i in r} for r in ranks)) == set(range(10))


def test_warmup_then_cosine_to_the_floor() -> None:
    values = [warmup_cosine(s, warmup_steps=4, total_steps=14, min_ratio=0.1) for s in range(16)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values[4] == pytest.approx(1.0) and values[9] == pytest.approx(0.55)
    assert values[14] == pytest.approx(0.1) and values[15] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values[4:], values[5:]))


def test_deepspeed_config_auto_fields_and_contradictions(tmp_path: Path) -> None:
    cfg = TrainConfig(data=DataConfig(batch_size=3), optim=OptimConfig(grad_accum=2, grad_clip=0.5))
    ds = resolve_ds_config(cfg.deepspeed_config, cfg)
    assert ds["train_micro_batch_size_per_gpu"] == 3 and ds["gradient_accumulation_steps"] == 2
    assert ds["gradient_clipping"] == 0.5 and ds["zero_optimization"]["stage"] == 2
    assert ds["bf16"]["enabled"] is torch.cuda.is_available()
    bad = tmp_path / "ds.json"
    bad.write_text(json.dumps({"train_micro_batch_size_per_gpu": 8, "zero_optimization": {"stage": 2}}))
    with pytest.raises(DeepSpeedConfigError, match="train_micro_batch_size_per_gpu=8 contradicts"):
        resolve_ds_config(bad, cfg)
    with pytest.raises(TrainConfigError, match="stage='3'"):
        TrainConfig(stage="3")
    with pytest.raises(TrainConfigError, match="p_flip=1.5"):
        AugmentConfig(p_flip=1.5)


def test_training_and_inference_prepare_a_reference_the_same_way(tmp_path: Path) -> None:
    from PIL import Image

    from model.generator import stack_images

    crop = np.zeros((12, 30, 3), np.uint8)  # a wide red entity on black, as the miner writes crops
    crop[2:10, 4:26, 0] = 200
    Image.fromarray(crop).save(tmp_path / "crop.png")
    dataset = ManifestDataset.__new__(ManifestDataset)
    dataset.root, dataset.size, dataset.augment = tmp_path, SIZE, None
    trained = dataset.reference("crop.png", np.random.default_rng(0), augment=False)
    served = stack_images([crop], "crop", SIZE.reference_size)[0]
    torch.testing.assert_close(trained, served, atol=1 / 255, rtol=0)
    # Padded to a square, not stretched: the top and bottom rows are the corner colour.
    assert trained[0, :5].max() == 0 and trained[0, 11:13, 8:16].min() > 0.75


def test_stage2_ablation_without_binding_starts_from_a_stage1_result_with_binding(tmp_path: Path) -> None:
    from components.train.trainer import build_model
    from model.alchemist import VideoAlchemist
    from model.config import tiny

    stage1 = VideoAlchemist(tiny())
    stage1.set_stage(1)
    stage1.save_pretrained(tmp_path / "stage1")
    config = TrainConfig(out=tmp_path / "out", binding=False, init_from=tmp_path / "stage1")
    model = build_model(config, stage=2, init_from=tmp_path / "stage1")
    assert model.config.dit.word_binding is False and not model.binder.bind
    assert not hasattr(model.binder, "binding_proj")
    for name, value in stage1.dit.state_dict().items():  # the denoiser is stage 1's, unchanged
        torch.testing.assert_close(model.dit.state_dict()[name], value)
    assert all(p.requires_grad for p in model.binder.parameters())


def test_a_16_bit_reference_keeps_its_tones(mined_dataset: Path, tmp_path: Path) -> None:
    """A 16-bit greyscale PNG reference trains on its true greys, not on clipped white."""
    from PIL import Image

    tones = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472
    Image.fromarray(tones).save(tmp_path / "deep.png")
    dataset = ManifestDataset(mined_dataset, SampleSize(4, 16, 16, 32, 4, 3), augment=None)
    dataset.root = tmp_path
    reference = dataset.reference("deep.png", np.random.default_rng(0), augment=False)
    expected = torch.from_numpy((tones / 65535.0).astype(np.float32))
    assert (reference[0] - expected).abs().max() < 1 / 255 + 1e-6
    assert float((reference >= 0.999).float().mean()) < 0.01  # before the shared decoder: 99.7% white
