"""The last differences to the public MSRVTT-Personalization evaluation code: CLIP's prompt normalisation,
DINO's LayerNorm eps, zero-area boxes, and N frames required for the published layout (see test_cli.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from components.evaluate import preprocess
from components.evaluate.evaluators import DINO_LAYER_NORM_EPS, ClipEmbedder, DinoEmbedder
from components.evaluate.text import clip_normalize


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (
            "A dog\u2019s \u201cred\u201d ball",
            'a dog\'s "red" ball',
        ),  # curly quotes, as ftfy straightens them
        ("Tom &amp;amp; Jerry &lt;3", "tom & jerry <3"),  # entities escaped twice
        ("caf\u00c3\u00a9 au lait", "caf\u00e9 au lait"),  # UTF-8 read as Latin-1 (mojibake)
        ("  a\tcat \n\n runs  ", "a cat runs"),  # whitespace collapsed and stripped
    ],
)
def test_prompts_are_normalised_like_clips_own_tokenizer(prompt: str, expected: str):
    assert clip_normalize(prompt) == expected
    assert clip_normalize(expected) == expected  # idempotent


def test_text_embedding_sees_the_normalised_prompt():
    clip = ClipEmbedder(None, "cpu", seed=0)
    clean = clip.text('tom & jerry\'s "ball"')
    np.testing.assert_array_equal(clip.text("Tom &amp;amp; Jerry\u2019s \u201cball\u201d"), clean)
    assert not np.allclose(clip.text("tom and jerry"), clean)


def test_dino_loads_with_dinos_layer_norm_eps_and_records_it(tmp_path: Path):
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, patch_size=16
    )
    assert config.layer_norm_eps == 1e-12  # what the transformers dino-vitb16 config falls back to
    ViTModel(config, add_pooling_layer=False).save_pretrained(tmp_path / "dino")
    dino = DinoEmbedder(str(tmp_path / "dino"), "cpu", seed=0)
    norms = [m for m in dino.model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.eps == DINO_LAYER_NORM_EPS == 1e-6 for m in norms)
    assert dino.model_id.endswith("ln_eps=1e-06(config 1e-12)") and dino.config_layer_norm_eps == 1e-12
    random = DinoEmbedder(None, "cpu", seed=0)
    assert all(m.eps == 1e-6 for m in random.model.modules() if isinstance(m, torch.nn.LayerNorm))


def test_zero_area_box_embeds_the_white_square():
    frame = np.random.default_rng(0).integers(0, 255, (16, 20, 3), dtype=np.uint8)
    white = preprocess.normalize(
        np.full((224, 224, 3), 255, np.uint8), preprocess.IMAGENET_MEAN, preprocess.IMAGENET_STD
    )
    for box in ((5, 2, 5, 12), (3, 7, 9, 7), (4, 4, 4, 4)):  # zero width, zero height, a point
        x0, y0, x1, y1 = box
        mask = np.ones((y1 - y0, x1 - x0), bool)
        torch.testing.assert_close(preprocess.dino_subject_crop(frame, box, mask), white)
    # the reference pads an empty crop into a square on white: the same as padding a 1-pixel white crop
    one_white = preprocess.dino_subject_crop(
        np.full((1, 1, 3), 255, np.uint8), (0, 0, 1, 1), np.ones((1, 1), bool)
    )
    torch.testing.assert_close(one_white, white)
