"""The reference check: own references score above swapped ones, and the strip and GIF are drawn."""

from __future__ import annotations

import numpy as np
from PIL import Image

from components.embedded import generate_embedded_dataset
from components.embedded.personalization import LANE_WORDS
from components.evaluate.reference_check import EvalSample, condition_references, load_rgba, reference_check


class LanePainter:
    """Stands in for a model that follows its references: each lane takes its word's reference colour."""

    def generate(self, prompt, references, background, steps, guidance, seed):
        video = np.zeros((4, 32, 32, 3), np.uint8)
        for word, rows in zip(LANE_WORDS, (slice(0, 16), slice(16, 32))):
            if word in references:
                video[:, rows] = references[word][0].reshape(-1, 3).mean(axis=0)
        return video


def lane_sample(tmp_path, name: str, upper: str, lower: str) -> EvalSample:
    photos = tmp_path / "ground_truth" / "identities"
    masks = {w: np.zeros((4, 32, 32), bool) for w in LANE_WORDS}
    masks[LANE_WORDS[0]][:, 4:12, 8:24] = True
    masks[LANE_WORDS[1]][:, 20:28, 8:24] = True
    truth = {w: load_rgba(photos / f"{i}.png") for w, i in zip(LANE_WORDS, (upper, lower))}
    return EvalSample(
        sample_id=name,
        video=np.zeros((4, 32, 32, 3), np.uint8),
        caption="the bird moves right and the ball moves left across the grass",
        roles=dict(zip(LANE_WORDS, (upper, lower))),
        masks=masks,
        truth=truth,
        references={w: [rgb] for w, (rgb, _) in truth.items()},
        background=None,
    )


def test_reference_check_scores_own_references_above_swapped_and_draws_the_strip(tmp_path):
    generate_embedded_dataset(tmp_path, samples=1, seed=0, progress=False)  # writes the identity photos
    samples = [
        lane_sample(tmp_path, "a", "chelsea", "coffee"),
        lane_sample(tmp_path, "b", "rocket", "logo"),
        lane_sample(tmp_path, "c", "astronaut", "motorcycle"),
    ]
    check = reference_check(LanePainter(), samples, LANE_WORDS, tmp_path / "check", steps=1, shown=2)
    assert check.n == 3 and check.correct > check.swapped
    assert check.line() == (
        f"reference check: fidelity with correct references {check.correct:.3f} "
        f"vs swapped {check.swapped:.3f} (n=3)"
    )
    with Image.open(check.strip) as strip:
        assert strip.size[1] == 4 * 2 * 32  # two prompts, drawn 4x
    with Image.open(check.gif) as gif:
        assert gif.format == "GIF" and gif.size[1] == 3 * 2 * 32


def crops_sample(references: dict[str, list[np.ndarray]]) -> EvalSample:
    return EvalSample("s", np.zeros((1, 2, 2, 3), np.uint8), "", {}, {}, {}, references, None)


def test_swapped_references_come_from_the_next_clip_and_fill_a_missing_word_in_lane_order():
    a, b, c, d = (np.full((2, 2, 3), value, np.uint8) for value in range(4))
    upper, lower = LANE_WORDS
    samples = [crops_sample({upper: [a], lower: [b]}), crops_sample({lower: [c, d]})]
    swapped = condition_references(samples, 0, "shuffled", LANE_WORDS)
    assert swapped[upper][0] is c and swapped[lower][0] is c  # the donor has no upper crop: its first one
    assert condition_references(samples, 1, "shuffled", LANE_WORDS)[lower][0] is b
    assert condition_references(samples, 0, "correct", LANE_WORDS)[upper][0] is a
    assert condition_references(samples, 0, "none", LANE_WORDS) == {}
