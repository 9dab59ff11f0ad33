"""Toy-world scores: a video that puts each identity where the ground truth says scores high and binds
correctly; swapping the identities keeps the layout but breaks binding."""

from __future__ import annotations

import numpy as np
import pytest

from components.evaluate.toyworld import (
    binding_accuracy,
    lane_assignment_accuracy,
    motion,
    reference_fidelity,
    resample_masks,
    score_sample,
)


def _reference(colour: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rgb = np.clip(np.array(colour) + rng.normal(0, 12, (12, 12, 3)), 0, 255).astype(np.uint8)
    alpha = np.full((12, 12, 1), 255, np.uint8)
    alpha[:2] = 0  # transparent rows must be ignored
    rgb[:2] = 0
    return np.concatenate([rgb, alpha], axis=2)


def _world(swap: bool = False, frames: int = 6) -> tuple[np.ndarray, dict, dict]:
    refs = {"cat": _reference((200, 60, 40), 0), "ball": _reference((40, 80, 210), 1)}
    masks = {w: np.zeros((frames, 32, 48), bool) for w in refs}
    video = np.full((frames, 32, 48, 3), 128, np.uint8)
    for t in range(frames):
        masks["cat"][t, 4:16, 2 + t : 14 + t] = True
        masks["ball"][t, 16:28, 30 - t : 42 - t] = True
        for word, other in (("cat", "ball"), ("ball", "cat")):
            source = refs[other if swap else word][2:, :, :3]
            ys, xs = np.nonzero(masks[word][t])
            video[t, ys, xs] = source[(ys - ys.min()) % 10, (xs - xs.min()) % 12]
    return video, masks, refs


def test_correct_world_scores_high_and_swapped_world_fails_binding():
    video, masks, refs = _world()
    good = score_sample(video, masks, refs)
    assert min(good.reference_fidelity.values()) > 0.9 and good.binding_accuracy == 1.0
    swapped_video, _, _ = _world(swap=True)
    bad = score_sample(swapped_video, masks, refs)
    assert bad.binding_accuracy == 0.0 and max(bad.reference_fidelity.values()) < 0.5
    assert good.motion.frame_difference > 0


def test_lane_assignment_scores_which_appearance_went_to_which_lane_wherever_along_it():
    video, masks, refs = _world()
    swapped, _, _ = _world(swap=True)
    # Rolled sideways (the background is uniform): entities leave their ground-truth masks, not their lanes.
    assert lane_assignment_accuracy(video, masks, refs) == 1.0
    assert lane_assignment_accuracy(np.roll(video, 16, axis=2), masks, refs) == 1.0
    assert lane_assignment_accuracy(swapped, masks, refs) == 0.0
    assert lane_assignment_accuracy(np.roll(swapped, 16, axis=2), masks, refs) == 0.0
    assert lane_assignment_accuracy(video, {"cat": masks["cat"]}, refs) is None  # one entity: no pair
    grey = np.full_like(video, 128)  # nothing drawn: no lane prefers either reference
    assert lane_assignment_accuracy(grey, masks, refs) == 0.0


def test_edge_cases_are_explicit():
    video, masks, refs = _world()
    assert binding_accuracy(video, {"cat": masks["cat"]}, refs) is None  # one entity: nothing to bind
    empty = np.zeros_like(masks["cat"])
    assert reference_fidelity(video, empty, refs["cat"]) is None
    still = np.repeat(video[:1], 4, axis=0)
    assert motion(still).frame_difference == 0.0 and motion(still).flow_magnitude == pytest.approx(
        0.0, abs=1e-3
    )
    with pytest.raises(ValueError, match="mask shape"):
        reference_fidelity(video, masks["cat"][:, :10], refs["cat"])
    small = resample_masks(masks["cat"], 3, (16, 24))
    assert small.shape == (3, 16, 24) and small[0, 2:8, 1:7].all()


def test_embedded_dataset_ground_truth_scores_its_own_clip_above_another(tmp_path):
    from components.embedded import generate_embedded_dataset
    from components.evaluate.toyworld import load_toy_ground_truth
    from components.media import read_video

    generate_embedded_dataset(tmp_path, samples=2, seed=0, progress=False)
    truth = load_toy_ground_truth(tmp_path, "emb-00000")
    own = read_video(tmp_path / "videos" / "emb-00000.mp4").frames
    other = read_video(tmp_path / "videos" / "emb-00001.mp4").frames
    mine = score_sample(own, truth.masks, truth.references)
    theirs = score_sample(other, truth.masks, truth.references)
    assert mine.binding_accuracy == 1.0 and min(mine.reference_fidelity.values()) > 0.8
    assert mine.mean_fidelity() > theirs.mean_fidelity() + 0.1
    with pytest.raises(ValueError, match="emb-99999"):
        load_toy_ground_truth(tmp_path, "emb-99999")

    # a mined sample is matched by its source file and cut to its clip's frames inside that source
    from components.evaluate.benchmark import Benchmark, BenchmarkSample
    from components.evaluate.toyworld import toy_truth_for_benchmark

    clip = BenchmarkSample(
        "m-0", "subject", "", {}, {}, source="/x/videos/emb-00000.mp4", source_frames=(4, 6, 8)
    )
    unrelated = BenchmarkSample("m-1", "subject", "", {}, {}, source="/x/other.mp4")
    found = toy_truth_for_benchmark(Benchmark("mined", tmp_path, "manifest", [clip, unrelated]), tmp_path)
    assert list(found) == ["subject/m-0"]
    for word, masks in found["subject/m-0"].masks.items():
        np.testing.assert_array_equal(masks, truth.masks[word][[4, 6, 8]])
