"""Checkpoints and encoder weights on S3 load through the same code as local folders."""

import numpy as np
import torch
from transformers import Dinov2Config, Dinov2Model

from components.storage import upload
from components.weights import build_model, load_generator
from model.config import preset
from model.generator import Generator


def test_model_with_s3_encoder_weights_and_checkpoint(s3_env, tmp_path, monkeypatch):
    _, bucket = s3_env
    monkeypatch.chdir(tmp_path)  # the download cache lives under the working folder
    torch.manual_seed(0)
    Dinov2Model(
        Dinov2Config(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=56,
            patch_size=14,
        )
    ).save_pretrained(tmp_path / "dinov2")
    upload(tmp_path / "dinov2", f"s3://{bucket}/weights/dinov2")
    config = preset("tiny")
    config.image.path = f"s3://{bucket}/weights/dinov2"
    model = build_model(config)
    assert model.random_weight_encoders() == ["text"]  # the DINOv2 weights came from S3
    model.save_pretrained(tmp_path / "ckpt")
    upload(tmp_path / "ckpt", f"s3://{bucket}/runs/1/ckpt")

    remote = load_generator(f"s3://{bucket}/runs/1/ckpt")
    assert remote.config.image.path == f"s3://{bucket}/weights/dinov2"  # portable location kept
    local = Generator(model)
    reference = {"cat": [np.full((20, 20, 3), 200, np.uint8)]}
    np.testing.assert_array_equal(
        remote.generate("a cat", reference, steps=2, seed=1),
        local.generate("a cat", reference, steps=2, seed=1),
    )
