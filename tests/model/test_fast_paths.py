"""The sampling fast paths compute what the plain paths compute: cross-attention keys and values projected once
per generation, and the guidance passes stacked into one batch."""

from __future__ import annotations

import numpy as np
import torch

from model.alchemist import VideoAlchemist
from model.batch import EntityReference
from model.dit import stack_conditioning
from model.flow import guided_velocity, predicted_x0
from model.generator import Generator
from model.sampler import sample
from tests.model.conftest import image

PROMPTS = ["a cat chases a dog", "a cup"]


def conditionings(model: VideoAlchemist):
    entities = [
        [EntityReference("cat", image(1)), EntityReference("dog", image(2))],
        [EntityReference("cup", image(3))],
    ]
    yes, no = torch.ones(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool)
    full = model.condition(PROMPTS, entities, [None, None])
    text_only = model.condition(PROMPTS, entities, [None, None], no, yes)
    null = model.condition(PROMPTS, entities, [None, None], yes, yes)
    return full, text_only, null


def test_projected_once_context_gives_the_same_velocity(trained):
    x, t = torch.randn(2, 48, 4, 8, 8), torch.tensor([0.3, 0.8])
    for cond in conditionings(trained):
        with torch.no_grad():
            plain = trained.dit(x, t, cond)
            fast = trained.dit(x, t, trained.dit.cross_context(cond))
        torch.testing.assert_close(fast, plain, rtol=0, atol=1e-6)


def test_stacked_guidance_passes_give_each_pass_its_own_velocity(trained):
    branches = conditionings(trained)
    x, t = torch.randn(2, 48, 4, 8, 8), torch.tensor([0.3, 0.8])
    with torch.no_grad():
        plain = [trained.dit(x, t, c) for c in branches]
        stacked = trained.dit(x.repeat(3, 1, 1, 1, 1), t.repeat(3), stack_conditioning(list(branches))).chunk(
            3
        )
    assert (plain[0] - plain[2]).abs().max() > 1e-3  # the passes really differ
    for a, b in zip(stacked, plain):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_generation_equals_the_plain_guided_ode_solve(trained):
    """The generator against the ODE solved with one plain DiT call per guidance pass per step."""
    steps, guidance, reference_guidance, seed = 4, 3.0, 2.0, 11
    references = {"cat": [np.full((24, 24, 3), 200, np.uint8)]}
    video = Generator(trained).generate(
        PROMPTS[0],
        references,
        steps=steps,
        guidance=guidance,
        reference_guidance=reference_guidance,
        seed=seed,
    )
    entities = [[EntityReference("cat", torch.full((1, 3, 24, 24), 200 / 255))]]
    yes, no = torch.ones(1, dtype=torch.bool), torch.zeros(1, dtype=torch.bool)
    full = trained.condition(PROMPTS[:1], entities, [None])
    text_only = trained.condition(PROMPTS[:1], entities, [None], no, yes)
    null = trained.condition(PROMPTS[:1], entities, [None], yes, yes)

    def velocity_fn(x, t, self_condition):
        tt = torch.full((1,), t)
        v_full, v_text, v_null = (trained.dit(x, tt, c, self_condition) for c in (full, text_only, null))
        return guided_velocity(v_full, v_text, v_null, guidance, reference_guidance), predicted_x0(
            x, v_full, tt
        )

    config = trained.config
    noise = torch.randn(config.latent_shape(8, 32, 32), generator=torch.Generator().manual_seed(seed))[None]
    latents = sample(velocity_fn, noise, steps, config.flow.sampler, config.flow.shift, config.flow.time_grid)
    expected = (
        ((trained.vae.decode(latents).clamp(-1, 1)[0].permute(1, 2, 3, 0) + 1) * 127.5)
        .round()
        .to(torch.uint8)
    )
    assert np.abs(video.astype(int) - expected.numpy().astype(int)).max() <= 1
