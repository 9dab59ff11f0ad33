"""The demo's lane-word world: words say where, references say how it looks."""

from __future__ import annotations

import numpy as np

from components.embedded import generate_embedded_dataset
from components.embedded.personalization import DEMO_WORLD, LANE_WORDS
from components.ground_truth import load_ground_truth, load_mask


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
