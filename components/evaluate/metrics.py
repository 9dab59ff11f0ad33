"""The five benchmark scores, as pure functions of embeddings and detections.

Each function mirrors the arithmetic of one `Distributed*` metric of the public MSRVTT-Personalization
code: sklearn `cosine_similarity` (rows L2-normalised, zero rows stay zero), means over all pairs,
and frames where a subject or face is missed counted as zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarity [N, M] of rows of `a` [N, D] and `b` [M, D] (sklearn semantics)."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding widths differ: {a.shape[1]} vs {b.shape[1]}")

    def _unit(x: np.ndarray) -> np.ndarray:
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(norm == 0, 1.0, norm)

    return _unit(a) @ _unit(b).T


def text_similarity(frame_embeddings: np.ndarray, text_embedding: np.ndarray) -> float:
    """Text-S of one video: mean cosine of each frame's CLIP image embedding with the prompt's text embedding."""
    return float(cosine_matrix(frame_embeddings, np.reshape(text_embedding, (1, -1))).mean())


def video_similarity(frame_embeddings: np.ndarray, reference_frame_embeddings: np.ndarray) -> float:
    """Vid-S of one video: mean of all pairwise cosines, generated frames x ground-truth frames."""
    return float(cosine_matrix(frame_embeddings, reference_frame_embeddings).mean())


def subject_similarity(
    detected: Sequence[Mapping[str, np.ndarray]],
    reference_embeddings: Mapping[str, np.ndarray],
) -> float:
    """Subj-S of one video.

    `detected[t][word]` is the DINO embedding [D] of `word`'s crop in frame t (absent when grounding or
    segmentation missed it); `reference_embeddings[word]` holds that entity's reference embeddings [n, D].
    Sum over frames x words of the mean cosine to the references, divided by frames x words, so a miss
    counts as zero.
    """
    words = list(reference_embeddings)
    if not words:
        raise ValueError("reference_embeddings is empty: Subj-S needs at least one entity with references")
    if not detected:
        raise ValueError("detected has no frames")
    total = 0.0
    for frame in detected:
        for word in words:
            if word in frame:
                total += float(cosine_matrix(frame[word], reference_embeddings[word]).mean())
    return total / (len(detected) * len(words))


def face_similarity(
    face_embeddings: np.ndarray | None, num_frames: int, reference_embeddings: np.ndarray
) -> float:
    """Face-S of one video: mean cosine of detected faces x reference faces, scaled by detected / frames."""
    if num_frames <= 0:
        raise ValueError(f"num_frames={num_frames} must be positive")
    if face_embeddings is None or len(face_embeddings) == 0:
        return 0.0
    similarity = float(cosine_matrix(face_embeddings, reference_embeddings).mean())
    return similarity * (len(face_embeddings) / num_frames)


def box_mask_consistent(box_xyxy: Sequence[int], mask_crop_shape: tuple[int, int], slack: int = 3) -> bool:
    """The reference code's sanity check between a box and its mask cropped to the box.

    A mask cropped at the image border can be smaller than the box; up to `slack` pixels on one side
    is accepted, anything else is treated as a failed detection.
    """
    box_w = box_xyxy[2] - box_xyxy[0]
    box_h = box_xyxy[3] - box_xyxy[1]
    mask_h, mask_w = mask_crop_shape
    return (mask_h == box_h and box_w - slack <= mask_w <= box_w) or (
        mask_w == box_w and box_h - slack <= mask_h <= box_h
    )
