"""A published-style Wan2.1 pipeline folder imports through the CLI, starts stage 2 as exactly Wan, and trains
only what personalization needs (real DeepSpeed, real MLflow store)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKLWan
from safetensors.torch import load_file
from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel
from typer.testing import CliRunner

from components.train.config import DataConfig, OptimConfig, TrainConfig
from components.train.trainer import train
from components.weights import load_model, locate
from model.alchemist import VideoAlchemist
from model.dit import Conditioning
from model.encoders.text import minilm_folder
from pipelines.cli import app
from tests.model.wan_folders import random_wan, save_diffusers

WAN = dict(
    num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4, text_dim=32,
    freq_dim=256, ffn_dim=48, num_layers=2, patch_size=(1, 2, 2),
)  # fmt: skip
SMALL_VIDEO = ["--set", "video.frames=5", "--set", "video.height=16", "--set", "video.width=16"]


def stage2_config(init_from: str, dataset: Path, tmp_path: Path, **options) -> TrainConfig:
    """Stage 2 from an imported Wan at a 5x16x16 video, backbone frozen, logged to a throwaway store."""
    data = options.pop("data", {})
    overrides = options.pop("model_overrides", {})
    return TrainConfig(
        out=tmp_path / "train",
        init_from=init_from,
        stage="2",
        trainable="personalization",
        sample_every=-1,
        progress=False,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        model_overrides={"video": {"frames": 5, "height": 16, "width": 16}, **overrides},
        data=DataConfig(manifest=dataset, batch_size=2, **data),
        **options,
    )


@pytest.fixture(scope="module")
def wan_pipeline_folder(tmp_path_factory) -> Path:
    """The diffusers layout of a published Wan2.1 T2V model: transformer/, text_encoder/, tokenizer/, vae/."""
    root = tmp_path_factory.mktemp("wan")
    wan = random_wan(WAN)
    save_diffusers(wan, root / "transformer")
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_folder()))
    tokenizer.save_pretrained(root / "tokenizer")
    torch.manual_seed(0)
    t5 = UMT5Config(vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=1, num_heads=2)
    UMT5EncoderModel(t5).save_pretrained(root / "text_encoder")
    AutoencoderKLWan(
        base_dim=8, z_dim=4, dim_mult=[1, 2], num_res_blocks=1, temperal_downsample=[True],
        latents_mean=[0.0] * 4, latents_std=[1.0] * 4,
    ).save_pretrained(root / "vae")  # fmt: skip
    return root


@pytest.fixture(scope="module")
def imported(wan_pipeline_folder, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("imported") / "wan-va"
    result = CliRunner().invoke(
        app,
        ["model", "import-wan", "--transformer", str(wan_pipeline_folder / "transformer"), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def test_import_finds_the_encoders_beside_the_transformer_and_says_what_is_random(imported):
    out, output = imported
    assert "fill in" not in output  # text_encoder/, tokenizer/ and vae/ were found
    assert "random DINOv2" in output
    model = VideoAlchemist.from_pretrained(out)
    assert model.config.vae.spatial_factor == 2 and model.config.vae.temporal_factor == 2
    assert model.random_weight_encoders() == ["image"]
    assert model.stage == 1


def test_the_imported_model_computes_wan_with_references_present(imported, wan_pipeline_folder):
    from diffusers import WanTransformer3DModel

    out, _ = imported
    model = VideoAlchemist.from_pretrained(out).eval()
    model.set_stage(2)  # personalization switched on, still silent
    wan = WanTransformer3DModel.from_pretrained(wan_pipeline_folder / "transformer").eval()
    latents = torch.randn(1, 4, 3, 4, 6, generator=torch.Generator().manual_seed(0))
    text = model.encode_text(["a cat moves across the room"])
    assert text.states.shape[1] == 512 and bool(text.mask.all())  # Wan's zero-padded, unmasked text
    cond = Conditioning(text.states, text.mask, torch.randn(1, 9, 24), torch.ones(1, 9, dtype=torch.bool))
    with torch.no_grad():
        ours = model.dit(latents, torch.tensor([0.3]), cond)
        theirs = wan(latents, timestep=torch.tensor([300.0]), encoder_hidden_states=text.states).sample
    assert (ours - theirs).abs().max() <= 1e-5


def test_an_unset_encoder_location_is_named_when_loading(wan_pipeline_folder, tmp_path):
    lone = tmp_path / "transformer"
    save_diffusers(random_wan(WAN), lone)
    out = tmp_path / "va"
    result = CliRunner().invoke(app, ["model", "import-wan", "--transformer", str(lone), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "fill in: text.path" in result.output and "fill in: vae.path" in result.output
    with pytest.raises(FileNotFoundError, match="text.path: UMT5-XXL"):
        VideoAlchemist.from_pretrained(out)


def test_stage_2_from_wan_trains_personalization_and_lora_only(imported, mined_dataset, tmp_path):
    out, _ = imported
    before = load_file(str(out / "model.safetensors"))
    config = stage2_config(
        str(out), mined_dataset, tmp_path, lora_rank=2, steps=3, optim=OptimConfig(lr=1e-2, warmup_steps=1)
    )
    result = train(config)
    final = load_file(str(result.final_dir / "model.safetensors"))
    assert set(final) == set(before)  # adapters merged: a plain checkpoint
    changed = {k for k in before if not torch.equal(before[k], final[k])}
    assert any(".ref_attn." in k for k in changed) and any(k.startswith("binder.") for k in changed)
    assert any(".self_attn.to_qkv.weight" in k for k in changed)  # through its LoRA adapter
    frozen = [k for k in before if k.startswith("dit.") and not any(
        part in k for part in (".ref_attn.", ".norm_ref.", "self_attn.to_", "text_attn.to_", ".mlp.fc")
    )]  # fmt: skip
    assert frozen and not changed & set(frozen)  # patch embedding, tables, norms, head: untouched
    assert not any(
        k.endswith(".bias") and "attn.to_" in k for k in changed - {k for k in changed if "ref_attn" in k}
    )
    VideoAlchemist.from_pretrained(result.final_dir)  # loads as any checkpoint does


def test_train_cli_refuses_a_bad_override_before_starting(imported, mined_dataset, tmp_path):
    out, _ = imported
    result = CliRunner().invoke(
        app,
        ["train", "--dataset", str(mined_dataset), "--init-from", str(out), "--out", str(tmp_path / "t"),
         "--set", "dit.depth=4", *SMALL_VIDEO],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "dit.depth cannot change" in result.output


def test_training_with_every_weight_on_s3(wan_pipeline_folder, mined_dataset, s3_env, tmp_path, monkeypatch):
    """Base model, text encoder, tokenizer, image encoder and VAE all come from the S3 endpoint."""
    from transformers import Dinov2Config, Dinov2Model

    from components.storage import upload

    _, bucket = s3_env
    monkeypatch.chdir(tmp_path)  # the download cache lives under the working folder
    dinov2 = tmp_path / "dinov2"
    Dinov2Model(
        Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                     image_size=56, patch_size=14)
    ).save_pretrained(dinov2)  # fmt: skip
    local = tmp_path / "wan-va"
    result = CliRunner().invoke(
        app,
        ["model", "import-wan", "--transformer", str(wan_pipeline_folder / "transformer"), "--out", str(local),
         "--image-encoder", str(dinov2)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    uris = {}
    for name, folder in {"base": local, "dinov2": dinov2, **{
        n: wan_pipeline_folder / n for n in ("text_encoder", "tokenizer", "vae")
    }}.items():  # fmt: skip
        uris[name] = f"s3://{bucket}/weights/{name}"
        upload(folder, uris[name])
    locations = {
        "text": {"path": uris["text_encoder"], "tokenizer_path": uris["tokenizer"]},
        "image": {"path": uris["dinov2"]},
        "vae": {"path": uris["vae"]},
    }
    config = stage2_config(uris["base"], mined_dataset, tmp_path, steps=1, model_overrides=locations)
    trained = VideoAlchemist.from_pretrained(train(config).final_dir, locate=locate)
    assert trained.config.text.path == uris["text_encoder"] and trained.config.vae.path == uris["vae"]
    assert trained.random_weight_encoders() == []  # every encoder came from S3 with real (saved) weights


def test_stage_2_on_the_encode_once_cache_never_loads_the_encoders(imported, mined_dataset, tmp_path):
    out, _ = imported
    encoded = CliRunner().invoke(
        app,
        ["data", "encode", "--dataset", str(mined_dataset), "--model", str(out), "--out", str(tmp_path / "f"),
         *SMALL_VIDEO],
    )  # fmt: skip
    assert encoded.exit_code == 0, encoded.output
    assert "encoded 6 samples" in encoded.output and "2 unreadable" in encoded.output
    folder = Path(encoded.output.split(" into ")[1].split(" (")[0])

    bare = load_model(out, load_encoders=False)  # what training builds when it reads the cache
    assert bare.text_encoder.random_weights is False and bare.vae.random_weights is False
    with pytest.raises(RuntimeError, match="text encoder was not loaded"):
        bare.encode_text(["a cat"])

    config = stage2_config(str(out), mined_dataset, tmp_path, steps=2, data={"features": folder})
    result = train(config)
    assert result.stages[0].steps == 2 and all(loss == loss for loss in result.stages[0].losses)
    VideoAlchemist.from_pretrained(result.final_dir)  # a complete checkpoint, encoders and all
