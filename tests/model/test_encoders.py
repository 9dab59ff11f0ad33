import dataclasses

import pytest
import torch
from diffusers import AutoencoderKL, AutoencoderKLWan
from transformers import Dinov2Config, Dinov2Model

from model.alchemist import VideoAlchemist
from model.batch import EncodedBatch
from model.config import ImageEncoderConfig, TextEncoderConfig, VAEConfig, preset
from model.encoders.image import ImageEncoder
from model.encoders.text import MINILM, TextEncoder
from model.encoders.vae import DiffusersVAE, PixelLatent


def test_pixel_latent_is_exactly_invertible():
    vae = PixelLatent(VAEConfig(spatial_factor=4, temporal_factor=2, latent_channels=96))
    video = torch.rand(2, 3, 8, 16, 24)
    latents = vae.encode(video)
    assert latents.shape == (2, 96, 4, 4, 6)
    torch.testing.assert_close(vae.decode(latents), video, rtol=0, atol=0)
    # a latent channel holds one pixel offset of one colour: the top-left red pixel of each 4x4 cell
    torch.testing.assert_close(latents[:, 0], video[:, 0, ::2, ::4, ::4])


@pytest.mark.parametrize("kind", ["t5", "umt5", "bert"])
def test_random_text_encoders_give_states_and_offsets(kind):
    encoder = TextEncoder(TextEncoderConfig(kind=kind, hidden_size=24, num_heads=2))
    text = encoder(["a dog runs", "a much longer prompt about a cat"])
    assert text.states.shape[:2] == text.mask.shape and text.states.shape[-1] == 24
    assert text.mask[0].sum() < text.mask[1].sum()  # padding is masked
    assert encoder.random_weights and not any(p.requires_grad for p in encoder.parameters())


def test_pretrained_minilm_loads_offline_and_knows_words():
    encoder = TextEncoder(TextEncoderConfig(path=MINILM))
    assert not encoder.random_weights and encoder.dim == 384

    def embedding(word: str) -> torch.Tensor:
        text = encoder([word])
        return text.states[0, 1:-1].mean(0)

    cos = torch.nn.functional.cosine_similarity
    assert cos(embedding("dog"), embedding("puppy"), dim=0) > cos(
        embedding("dog"), embedding("rocket"), dim=0
    )


def test_image_encoder_loads_a_pretrained_folder(tmp_path):
    config = ImageEncoderConfig(hidden_size=32, num_layers=1, num_heads=2, image_size=28, patch_size=14)
    torch.manual_seed(0)
    saved = Dinov2Model(
        Dinov2Config(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=28,
            patch_size=14,
        )
    )
    saved.save_pretrained(tmp_path / "dinov2")
    encoder = ImageEncoder(dataclasses.replace(config, path=str(tmp_path / "dinov2")))
    assert not encoder.random_weights
    images = torch.rand(3, 3, 50, 40)
    tokens = encoder(images)
    assert tokens.shape == (3, 1 + 2 * 2, 32)
    torch.testing.assert_close(
        tokens[:, 0],
        saved(
            pixel_values=(
                torch.nn.functional.interpolate(images, size=(28, 28), mode="bilinear", antialias=True)
                - encoder.mean
            )
            / encoder.std
        ).last_hidden_state[:, 0],
    )
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageEncoder(dataclasses.replace(config, path=str(tmp_path / "missing")))


def test_clip_vision_ablation_builds():
    encoder = ImageEncoder(ImageEncoderConfig(kind="clip", hidden_size=32, num_layers=1, num_heads=2))
    assert encoder(torch.rand(2, 3, 30, 30)).shape == (2, 5, 32)
    small, large = torch.rand(2, 3, 30, 30), torch.rand(1, 3, 50, 40)  # groups of any size in one call
    torch.testing.assert_close(encoder([small, large]), torch.cat([encoder(small), encoder(large)]))
    with pytest.raises(ValueError, match=r"must be \(N, 3, h, w\)"):
        encoder(torch.rand(2, 30, 30))


def test_image_autoencoder_from_a_folder_runs_per_frame(tmp_path):
    torch.manual_seed(0)
    AutoencoderKL(
        block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    ).save_pretrained(tmp_path / "vae")
    vae = DiffusersVAE(
        VAEConfig(kind="diffusers", path=str(tmp_path / "vae"), spatial_factor=2, latent_channels=4)
    )
    latents = vae.encode(torch.rand(1, 3, 3, 16, 16) * 2 - 1)
    assert latents.shape == (1, 4, 3, 8, 8)
    assert vae.decode(latents).shape == (1, 3, 3, 16, 16)


def test_video_autoencoder_from_a_folder_is_causal_in_time(tmp_path):
    torch.manual_seed(0)
    AutoencoderKLWan(
        base_dim=8,
        z_dim=4,
        dim_mult=[1, 2],
        num_res_blocks=1,
        temperal_downsample=[True],
        latents_mean=[0.0] * 4,
        latents_std=[1.0] * 4,
    ).save_pretrained(tmp_path / "wan")
    config = VAEConfig(
        kind="diffusers",
        path=str(tmp_path / "wan"),
        spatial_factor=2,
        temporal_factor=2,
        latent_channels=4,
        causal=True,
    )
    vae = DiffusersVAE(config)
    latents = vae.encode(torch.rand(1, 3, 5, 16, 16) * 2 - 1)
    assert latents.shape == (1, 4, 3, 8, 8)  # 1 + (5 - 1) / 2 latent frames
    tiny = preset("tiny")
    model = dataclasses.replace(
        tiny, vae=config, video=dataclasses.replace(tiny.video, frames=5, height=16, width=16)
    )
    assert model.latent_shape(5, 16, 16) == tuple(latents.shape[1:])


def test_tokens_of_clips_and_of_their_latents_agree():
    config = preset("tiny")
    latents = PixelLatent(config.vae).encode(torch.rand(1, 3, 8, 32, 32))
    assert EncodedBatch(latents, None).video_tokens(config) == config.video_tokens(8, 32, 32) == 8 * 4 * 4


def test_config_round_trip_and_validation():
    config = preset("small")
    assert type(config).from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="divisible by dit.num_heads=5"):
        dataclasses.replace(config, dit=dataclasses.replace(config.dit, num_heads=5))
    with pytest.raises(ValueError, match="frames=7 must be a positive multiple of 1|height=30"):
        dataclasses.replace(config, video=dataclasses.replace(config.video, height=30))
    with pytest.raises(ValueError, match="preset='huge' is unknown"):
        preset("huge")


def test_checkpoint_omits_pretrained_encoders(tmp_path):
    config = preset("tiny")
    config.text = TextEncoderConfig(path=MINILM)
    torch.manual_seed(0)
    model = VideoAlchemist(config)
    assert model.random_weight_encoders() == ["image"]
    model.save_pretrained(tmp_path / "ckpt")
    assert not any(k.startswith("text_encoder.") for k in model.saved_state())
    loaded = VideoAlchemist.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.dit.head.weight, model.dit.head.weight)
