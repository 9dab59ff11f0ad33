"""The reference protocol's pixel transforms and score arithmetic, on small exact arrays."""

from __future__ import annotations

import numpy as np
import pytest

from components.evaluate import preprocess
from components.evaluate.dynamics import FarnebackFlow, dynamic_degree, top_flow_score
from components.evaluate.faces import extend_face_box
from components.evaluate.metrics import (
    box_mask_consistent,
    face_similarity,
    subject_similarity,
    text_similarity,
    video_similarity,
)


def test_pad_square_white_places_image_like_pil_paste():
    wide = np.zeros((2, 5, 3), np.uint8)
    out = preprocess.pad_square_white(wide)
    assert out.shape == (5, 5, 3)
    assert (
        (out[:1] == 255).all() and (out[1:3] == 0).all() and (out[3:] == 255).all()
    )  # top offset (5-2)//2 = 1
    tall = np.zeros((4, 1, 3), np.uint8)
    out = preprocess.pad_square_white(tall)
    assert (out[:, 1] == 0).all() and (out[:, [0, 2, 3]] == 255).all()  # left offset (4-1)//2 = 1


def test_white_masking_and_transparency_are_exact():
    crop = np.full((2, 2, 3), 7, np.uint8)
    mask = np.array([[True, False], [False, True]])
    out = preprocess.mask_onto_white(crop, mask)
    assert out[0, 0].tolist() == [7, 7, 7] and out[0, 1].tolist() == [255, 255, 255]
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[0, 0] = [1, 2, 3, 0]
    rgba[0, 1] = [1, 2, 3, 9]
    assert preprocess.alpha_to_white(rgba).tolist() == [[[255, 255, 255], [1, 2, 3]]]
    with pytest.raises(ValueError, match="mask shape"):
        preprocess.mask_onto_white(crop, mask[:1])


def test_center_crop_rounds_offsets_like_torchvision():
    image = np.arange(3 * 6).reshape(3, 6)[..., None].repeat(3, axis=2).astype(np.uint8)
    out = preprocess.center_crop_square(image)
    assert out.shape == (3, 3, 3) and out[0, 0, 0] == image[0, 2, 0]  # round(1.5) == 2


def test_pairwise_means_match_explicit_loops():
    rng = np.random.default_rng(0)
    a, b, t = rng.normal(size=(4, 8)), rng.normal(size=(3, 8)), rng.normal(size=8)

    def cos(x, y):
        return x @ y / np.linalg.norm(x) / np.linalg.norm(y)

    assert video_similarity(a, b) == pytest.approx(np.mean([[cos(x, y) for y in b] for x in a]))
    assert text_similarity(a, t) == pytest.approx(np.mean([cos(x, t) for x in a]))


def test_missed_detections_count_as_zero():
    ref = {"dog": np.array([[1.0, 0.0]]), "ball": np.array([[0.0, 1.0]])}
    # two frames x two words; only the dog in frame 0 is found, and it matches its reference exactly
    assert subject_similarity([{"dog": np.array([2.0, 0.0])}, {}], ref) == pytest.approx(1.0 / 4)
    assert subject_similarity([{}, {}], ref) == 0.0
    target = np.array([[1.0, 0.0]])
    assert face_similarity(np.array([[3.0, 0.0]]), 4, target) == pytest.approx(0.25)
    assert face_similarity(np.zeros((0, 2)), 4, target) == 0.0


def test_box_mask_check_and_face_box_extension():
    assert box_mask_consistent([0, 0, 10, 20], (20, 8)) and not box_mask_consistent([0, 0, 10, 20], (20, 6))
    # top rises by 17% of 100 = 17; the bottom then grows by 3% of the raised height (117) -> int(203.51)
    assert extend_face_box((0, 100, 50, 200), 1000) == (0, 83, 50, 203)


def _texture(h: int, w: int, shift: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (h, w + 200), dtype=np.uint8)
    base = np.asarray(__import__("cv2").GaussianBlur(base, (5, 5), 1.5))
    return np.repeat(base[:, shift : shift + w, None], 3, axis=2)


def test_dynamic_degree_static_is_zero_and_fast_motion_is_one():
    static = np.stack([_texture(64, 64, 0)] * 16)
    moving = np.stack([_texture(64, 64, 5 * t) for t in range(16)])
    flow = FarnebackFlow()
    still = dynamic_degree(static, 8.0, flow)
    fast = dynamic_degree(moving, 8.0, flow)
    assert not still.dynamic and max(still.pair_scores) < 0.1
    assert fast.dynamic and fast.threshold == pytest.approx(1.5) and fast.count_needed == 4
    assert np.median(fast.pair_scores) == pytest.approx(5.0, abs=1.0)
    assert dynamic_degree(moving, 24.0, flow).interval == 3  # subsampled to ~8 fps
    assert top_flow_score(np.zeros((4, 5, 2))) == 0.0  # 5% of 20 pixels still scores one pixel
