"""The embedded dataset: deterministic, exact masks, stable words per identity, readable ground truth."""

import dataclasses
import json

import numpy as np
import pytest

from components.embedded import (
    IDENTITIES,
    EmbeddedConfig,
    generate_embedded_dataset,
    plan_sample,
    render_sample,
)
from components.ground_truth import load_ground_truth, load_mask


def test_same_seed_same_clip_and_other_seed_differs():
    config = EmbeddedConfig()
    first = render_sample(plan_sample(np.random.default_rng([7, 3]), config), config)
    again = render_sample(plan_sample(np.random.default_rng([7, 3]), config), config)
    other = render_sample(plan_sample(np.random.default_rng([8, 3]), config), config)
    assert np.array_equal(first.frames, again.frames)
    assert first.masks.keys() == again.masks.keys()
    assert all(np.array_equal(first.masks[k], again.masks[k]) for k in first.masks)
    assert not np.array_equal(first.frames, other.frames)


@pytest.mark.parametrize("index", range(6))
def test_masks_are_exactly_the_pixels_each_entity_shows(index):
    config = EmbeddedConfig()
    plan = plan_sample(np.random.default_rng([0, index]), config)
    rendered = render_sample(plan, config)
    union = np.logical_or.reduce(list(rendered.masks.values()))
    # Outside every mask the frame is the clean background, pixel for pixel.
    assert np.array_equal(
        rendered.frames[~union], np.broadcast_to(rendered.background, rendered.frames.shape)[~union]
    )
    for entity in plan.entities:
        alone = render_sample(dataclasses.replace(plan, entities=(entity,)), config)
        visible = rendered.masks[entity.identity]
        assert visible.any(axis=(1, 2)).sum() >= config.num_frames // 2
        assert np.array_equal(rendered.frames[visible], alone.frames[visible])
        # Visible masks never overlap: an occluded pixel belongs to the entity in front.
        for other, mask in rendered.masks.items():
            if other != entity.identity:
                assert not (visible & mask).any()


def test_generated_folder_ground_truth_and_stable_words(tmp_path):
    dataset = generate_embedded_dataset(tmp_path, samples=4, seed=1, progress=False)
    again = generate_embedded_dataset(tmp_path / "again", samples=4, seed=1, progress=False)
    captions = [json.loads(line) for line in dataset.captions.read_text().splitlines()]
    assert [c["file"] for c in captions] == [f"emb-{i:05d}.mp4" for i in range(4)]
    assert captions == [json.loads(line) for line in again.captions.read_text().splitlines()]
    for name in ("emb-00000.mp4", "emb-00003.mp4"):
        assert (dataset.videos / name).read_bytes() == (again.videos / name).read_bytes()
    truth = load_ground_truth(tmp_path)
    assert set(truth.sample_id) == {f"emb-{i:05d}" for i in range(4)}
    for row in truth.itertuples():
        assert row.caption[row.token_start : row.token_end] == row.word
        if row.kind == "background":
            assert row.mask_paths == []
            continue
        assert IDENTITIES[row.identity].word == row.word and IDENTITIES[row.identity].kind == row.kind
        masks = np.stack([load_mask(p) for p in row.mask_paths])
        assert masks.shape == (24, 64, 64) and masks.any()
    assert (dataset.ground_truth / "identities" / "chelsea.png").is_file()
    assert truth.groupby("sample_id").kind.apply(lambda k: (k == "background").sum()).eq(1).all()


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="even"):
        EmbeddedConfig(height=63)
    with pytest.raises(ValueError, match="pairing"):
        EmbeddedConfig(pairing="pairs")  # type: ignore[arg-type]


def _casts(config: EmbeddedConfig, n: int = 80) -> list[list[str]]:
    plans = [plan_sample(np.random.default_rng([3, i]), config) for i in range(n)]
    return [[IDENTITIES[e.identity].kind for e in plan.entities] for plan in plans if len(plan.entities) == 2]


def test_pairing_any_draws_two_distinct_identities_of_either_kind():
    default = _casts(EmbeddedConfig(two_entity_prob=1.0))
    assert all(sorted(kinds) == ["object", "subject"] for kinds in default)
    config = EmbeddedConfig(two_entity_prob=1.0, cross_prob=0.0, pairing="any")
    plans = [plan_sample(np.random.default_rng([3, i]), config) for i in range(80)]
    assert all(len({e.identity for e in plan.entities}) == 2 for plan in plans)
    kinds = {tuple(sorted(k)) for k in _casts(config)}
    assert kinds == {("object", "object"), ("object", "subject"), ("subject", "subject")}
    # No crossing: the two entities keep to separate lanes (mean heights apart).
    for plan in plans:
        upper, lower = sorted(float(e.centers[:, 1].mean()) for e in plan.entities)
        assert lower - upper > 0.25 * config.height
