"""An imported Wan2.1 transformer computes exactly what diffusers' WanTransformer3DModel computes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from safetensors.torch import load_file, save_file

from model.dit import Conditioning
from model.flow import time_grid
from model.sampler import sample
from model.wan import WanImportError, import_wan_transformer
from tests.model.wan_folders import random_wan, save_diffusers, save_original

# Two shapes: several heads over a non-square grid of 3 latent frames, and Wan's own 16 latent channels.
CONFIGS = {
    "wide-grid": dict(
        num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4, text_dim=20,
        freq_dim=256, ffn_dim=40, num_layers=2, patch_size=(1, 2, 2),
    ),
    "wan-channels": dict(
        num_attention_heads=3, attention_head_dim=16, in_channels=16, out_channels=16, text_dim=32,
        freq_dim=64, ffn_dim=72, num_layers=3, patch_size=(1, 2, 2),
    ),
}  # fmt: skip
LATENTS = {"wide-grid": (2, 4, 3, 6, 10), "wan-channels": (1, 16, 2, 8, 4)}


def run_both(name: str, folder_of, tmp_path) -> float:
    wan = random_wan(CONFIGS[name])
    ours = import_wan_transformer(folder_of(wan, tmp_path / name)).eval()
    gen = torch.Generator().manual_seed(1)
    latents = torch.randn(LATENTS[name], generator=gen)
    batch = latents.shape[0]
    text = torch.randn(batch, 7, CONFIGS[name]["text_dim"], generator=gen)
    t = torch.rand(batch, generator=gen)
    with torch.no_grad():
        expected = wan(latents, timestep=t * 1000, encoder_hidden_states=text).sample
        got = ours(latents, t, Conditioning(text=text, text_mask=torch.ones(batch, 7, dtype=torch.bool)))
    assert expected.abs().mean() > 0.1  # a live output, not two zeros agreeing
    return (got - expected).abs().max().item()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_imported_dit_matches_diffusers_wan(name, tmp_path):
    assert run_both(name, save_diffusers, tmp_path) <= 1e-5


def test_the_original_wan_layout_imports_to_the_same_function(tmp_path):
    assert run_both("wide-grid", save_original, tmp_path) <= 1e-5


def test_references_change_nothing_until_stage_2_trains(tmp_path):
    ours = import_wan_transformer(save_diffusers(random_wan(CONFIGS["wide-grid"]), tmp_path / "w")).eval()
    latents, text = torch.randn(1, 4, 2, 4, 4), torch.randn(1, 5, 20)
    mask = torch.ones(1, 5, dtype=torch.bool)
    plain = Conditioning(text=text, text_mask=mask)
    with_refs = Conditioning(text, mask, torch.randn(1, 6, 24), torch.ones(1, 6, dtype=torch.bool))
    with torch.no_grad():
        base = ours(latents, torch.tensor([0.4]), plain)
        assert torch.equal(ours(latents, torch.tensor([0.4]), with_refs), base)
        assert torch.equal(ours(latents, torch.tensor([0.4]), plain, torch.randn_like(latents)), base)


def test_an_unknown_tensor_fails_the_import_by_name(tmp_path):
    folder = save_diffusers(random_wan(CONFIGS["wide-grid"]), tmp_path / "w", shard="10GB")
    weights = folder / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights))
    state["blocks.0.attn2.add_k_proj.weight"] = torch.zeros(24, 24)
    save_file(state, str(weights))
    with pytest.raises(WanImportError, match="blocks.0.attn2.add_k_proj.weight"):
        import_wan_transformer(folder)


def test_a_wrong_shape_fails_the_import_by_name(tmp_path):
    folder = save_diffusers(random_wan(CONFIGS["wide-grid"]), tmp_path / "w", shard="10GB")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "ffn_dim": 48}))
    with pytest.raises(
        WanImportError, match=r"blocks\.0\.ffn\.net\.0\.proj\.weight: \(40, 24\) vs ours \(48, 24\)"
    ):
        import_wan_transformer(folder)


def test_image_conditioned_wan_is_refused(tmp_path):
    folder = save_diffusers(random_wan(CONFIGS["wide-grid"]), tmp_path / "w")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "image_dim": 1280}))
    with pytest.raises(WanImportError, match="image_dim=1280"):
        import_wan_transformer(folder)


@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0])
def test_euler_sampler_follows_diffusers_flow_match_scheduler_step_by_step(shift):
    """The same velocity field, integrated by our sampler on the flow_match grid and by diffusers."""
    steps = 12

    def field(x: torch.Tensor, t: float) -> torch.Tensor:
        return torch.sin(3 * x) * (0.5 + t) - x

    noise = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))
    ours_states = []

    def velocity_fn(x, t, _):
        ours_states.append(x.clone())
        return field(x, t), x

    ours = sample(velocity_fn, noise, steps, "euler", shift, "flow_match")

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    scheduler.set_timesteps(steps)
    np.testing.assert_allclose(
        time_grid(steps, shift, "flow_match").numpy(), scheduler.sigmas.numpy(), atol=1e-7
    )
    x, theirs_states = noise.clone(), []
    for timestep in scheduler.timesteps:
        theirs_states.append(x.clone())
        x = scheduler.step(field(x, float(timestep) / 1000), timestep, x).prev_sample
    assert len(ours_states) == len(theirs_states) == steps
    for mine, theirs in zip(ours_states, theirs_states):
        torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours, x, atol=1e-6, rtol=0)
