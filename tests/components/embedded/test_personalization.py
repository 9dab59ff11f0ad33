"""The demo's lane-word world and the reference check: words say where, references say how it looks."""

from __future__ import annotations

import numpy as np
from PIL import Image

from components.embedded import generate_embedded_dataset, load_ground_truth, load_mask
from components.embedded.personalization import (
    DEMO_WORLD,
    LANE_WORDS,
    EvalSample,
    load_rgba,
    reference_check,
)


def test_lane_words_name_the_upper_and_the_lower_entity(tmp_path):
    generate_embedded_dataset(tmp_path, samples=6, seed=0, config=DEMO_WORLD, progress=False)
    truth = load_ground_truth(tmp_path)
    upper, lower = LANE_WORDS
    for sample_id, rows in truth[truth["kind"] != "background"].groupby("sample_id"):
        assert sorted(rows["word"]) == sorted(LANE_WORDS), sample_id
        caption = rows.iloc[0]["caption"]
        assert caption.startswith(f"the {upper} moves ") and f" and the {lower} moves " in caption
        heights = {}
        for row in rows.itertuples():
            assert f"/masks/{sample_id}/{row.word}/" in row.mask_paths[0]
            ys = [np.nonzero(load_mask(p))[0].mean() for p in row.mask_paths if load_mask(p).any()]
            heights[row.word] = np.mean(ys)
        assert heights[upper] < heights[lower], sample_id


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
    check = reference_check(LanePainter(), samples, tmp_path / "check", steps=1, shown=2)
    assert check.n == 3 and check.correct > check.swapped
    assert check.line() == (
        f"reference check: fidelity with correct references {check.correct:.3f} "
        f"vs swapped {check.swapped:.3f} (n=3)"
    )
    with Image.open(check.strip) as strip:
        assert strip.size[1] == 4 * 2 * 32  # two prompts, drawn 4x
    with Image.open(check.gif) as gif:
        assert gif.format == "GIF" and gif.size[1] == 3 * 2 * 32
