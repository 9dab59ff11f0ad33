"""The fast paths compute what the plain paths compute: fused q/k/v projections against the separate ones of
older checkpoints, cross-attention keys and values projected once per generation, the guidance passes stacked
into one batch, the step cache switched off, the fp32 time conditioning under bf16 autocast, and a short
context's attention with the output projection folded into its values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from peft import LoraConfig, inject_adapter_in_model
from safetensors.torch import load_file, save_file

from model.alchemist import VideoAlchemist
from model.batch import EntityReference
from model.blocks import CrossAttention, KeysValues, ShortContext
from model.dit import Conditioning, VideoDiT, collapse_repeated_tail, stack_conditioning
from model.flow import guided_velocity, predicted_x0
from model.generator import Generator
from model.sampler import StepCache, sample
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


def separate_projections(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The layout of checkpoints written before the fusion: separate to_q / to_k / to_v."""
    old = {}
    for key, tensor in state.items():
        for name, parts in ((".to_qkv.", ("to_q", "to_k", "to_v")), (".to_kv.", ("to_k", "to_v"))):
            if name in key:
                attention, leaf = key.split(name)
                old.update({f"{attention}.{p}.{leaf}": c for p, c in zip(parts, tensor.chunk(len(parts)))})
                break
        else:
            old[key] = tensor
    return old


def test_a_checkpoint_with_separate_projections_loads_to_the_same_function(trained, tmp_path):
    trained.save_pretrained(tmp_path / "va")
    weights = tmp_path / "va" / "model.safetensors"
    old = separate_projections(load_file(str(weights)))
    assert any(".self_attn.to_q." in k for k in old) and not any(
        ".to_qkv." in k or ".to_kv." in k for k in old
    )
    save_file(old, str(weights))
    loaded = VideoAlchemist.from_pretrained(tmp_path / "va").eval()
    direct = VideoDiT(trained.dit.config, trained.dit.latent_channels, trained.dit.text_proj[0].in_features)
    direct.load_state_dict(separate_projections(trained.dit.state_dict()))  # the load-time hook
    x, t = torch.randn(2, 48, 4, 8, 8), torch.tensor([0.3, 0.8])
    cond = conditionings(trained)[0]
    with torch.no_grad():
        expected = trained.dit(x, t, cond)
        assert torch.equal(loaded.dit(x, t, cond), expected)
        assert torch.equal(direct.eval()(x, t, cond), expected)


def test_time_conditioning_stays_fp32_under_bf16_autocast(trained):
    t = torch.tensor([0.3, 0.8])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emb, table = trained.dit.time_conditioning(t)
        assert (
            trained.dit.time_embed[0](torch.zeros(1, trained.dit.config.time_freq_dim)).dtype
            == torch.bfloat16
        )  # autocast is on
    plain_emb, plain_table = trained.dit.time_conditioning(t)
    assert emb.dtype == table.dtype == torch.float32
    assert torch.equal(emb, plain_emb) and torch.equal(table, plain_table)


def cached_generation(model: VideoAlchemist, cache: StepCache | None, steps: int = 6) -> np.ndarray:
    return Generator(model).generate(PROMPTS[0], {}, steps=steps, guidance=3.0, seed=5, step_cache=cache)


def test_step_cache_at_threshold_zero_computes_every_step_and_the_same_video(trained):
    off = StepCache(0.0)
    assert np.array_equal(cached_generation(trained, off), cached_generation(trained, None))
    assert (off.computed, off.skipped) == (6, 0)


def test_step_cache_skips_steps_whose_input_barely_moved(trained):
    loose = StepCache(10.0)
    cached_generation(trained, loose)
    assert loose.computed == 1 and loose.skipped == 5  # a fresh generation always computes its first step
    cached_generation(trained, loose)
    assert loose.computed == 2  # a new generation (new context) starts the cache afresh


def test_step_cache_skips_exactly_when_the_recorded_move_is_under_the_threshold(trained):
    """`moves` is what the skip decision compares: a threshold just above a step's move skips it, just below
    computes it."""
    probe = StepCache(0.0)
    cached_generation(trained, probe, steps=2)
    (move,) = probe.moves  # one move: between the first and the second step
    above, below = StepCache(move * 1.01), StepCache(move * 0.99)
    cached_generation(trained, above, steps=2)
    cached_generation(trained, below, steps=2)
    assert (above.computed, above.skipped) == (1, 1)
    assert (below.computed, below.skipped) == (2, 0)
    assert above.moves == below.moves == [move]  # the first step is shared, so the second sees the same input
    assert above.probe is None and above.residual is None  # released with the generation, counts kept


@pytest.mark.parametrize("qk_norm", ["across_heads", "per_head", "none"])
def test_a_short_context_attends_as_attention_then_the_output_projection(qk_norm):
    """The two-matmul `ShortContext` path against SDPA then W_o: outputs and every gradient, with a padded
    context and a sample whose keys are all masked (its update stays zero)."""
    torch.manual_seed(0)
    attention = CrossAttention(48, 4, qk_norm)
    for parameter in attention.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    x, context = torch.randn(3, 20, 48), torch.randn(3, 5, 48)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    assert attention.is_short(5) and isinstance(attention.keys_values(context), ShortContext)

    def run(short: bool, mask: torch.Tensor | None):
        attention.zero_grad(set_to_none=True)
        attention.is_short = lambda length: short
        out = attention(x, context, mask)
        out.square().sum().backward()
        del attention.is_short
        return out.detach(), {n: p.grad.clone() for n, p in attention.named_parameters()}

    for key_mask in (None, mask):
        (fast, fast_grads), (plain, plain_grads) = run(True, key_mask), run(False, key_mask)
        torch.testing.assert_close(fast, plain, rtol=0, atol=1e-5)
        for name, grad in plain_grads.items():
            assert (fast_grads[name] - grad).abs().max() <= 1e-5 * grad.abs().max(), name
    assert fast[2].abs().max() == 0 and fast[0].abs().max() > 0.1


def test_a_long_context_or_an_adapted_output_projection_takes_plain_attention():
    attention = CrossAttention(48, 4, "across_heads")
    assert attention.is_short(11) and not attention.is_short(12)  # 4 heads x 12 keys is no longer < 48
    assert isinstance(attention.keys_values(torch.randn(1, 12, 48)), KeysValues)
    inject_adapter_in_model(LoraConfig(r=2, target_modules=["to_out"]), attention)
    assert not attention.is_short(1)  # W_o plus its adapter is applied as a module, never folded


def zero_padded(prompt_lengths: list[int], length: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Text states as Wan's encoder gives them: each prompt's tokens, then zeros up to `length`, all attended."""
    states = torch.zeros(len(prompt_lengths), length, dim)
    for row, n in enumerate(prompt_lengths):
        states[row, :n] = torch.randn(n, dim, generator=torch.Generator().manual_seed(row))
    return states, torch.ones(len(prompt_lengths), length, dtype=torch.bool)


@pytest.mark.parametrize(
    "heads", [4, 8]
)  # the collapsed context: a ShortContext (4 x 7 keys < 48), or plain (8)
def test_a_run_of_identical_padding_attends_as_one_key_with_its_multiplicity(heads):
    torch.manual_seed(0)
    attention = CrossAttention(48, heads, "across_heads")
    for parameter in attention.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    context, mask = zero_padded([3, 6, 0], 40, 48)
    mask[2] = False  # a sample with nothing to attend to
    states, new_mask, bias = collapse_repeated_tail(context, mask)
    assert states.shape[1] == 7 and new_mask[:2].sum(1).tolist() == [4, 7] and not new_mask[2].any()
    assert bias[0, 3] == pytest.approx(np.log(37)) and bias[1, 6] == pytest.approx(np.log(34))
    collapsed = attention.keys_values(states, bias)
    assert isinstance(collapsed, ShortContext if heads == 4 else KeysValues)
    x = torch.randn(3, 20, 48)
    with torch.no_grad():
        plain = attention(x, context, mask)  # 40 keys: plain attention either way
        fast = attention(x, collapsed, new_mask)
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-5)
    assert fast[2].abs().max() == 0 and fast[0].abs().max() > 0.1
    assert collapse_repeated_tail(*zero_padded([5], 5, 8))[2] is None  # no padding: unchanged


def test_zero_padded_text_trains_and_samples_over_its_collapsed_context(trained):
    """Forward and gradients of the collapse against the same text with each padding row shifted by k * 1e-30:
    far below what the projections resolve, yet no two rows are equal bit for bit, so nothing collapses."""
    text, mask = zero_padded([4, 9], 64, trained.dit.text_proj[0].in_features)
    x, t = torch.randn(2, 48, 4, 8, 8), torch.tensor([0.3, 0.8])
    distinct = text + 1e-30 * torch.arange(64.0)[None, :, None]  # every row unique: no collapse
    assert collapse_repeated_tail(distinct, mask)[2] is None

    def velocity_and_grads(states: torch.Tensor):
        trained.dit.zero_grad(set_to_none=True)
        velocity = trained.dit(x, t, Conditioning(states, mask))
        velocity.square().mean().backward()
        return velocity.detach(), {
            n: p.grad.clone() for n, p in trained.dit.named_parameters() if p.grad is not None
        }

    plain, plain_grads = velocity_and_grads(distinct)
    trained.dit.train()
    try:
        for checkpointing in (False, True):  # with checkpointing the collapsed text is projected in the block
            trained.dit.config.gradient_checkpointing = checkpointing
            fast, fast_grads = velocity_and_grads(text)
            torch.testing.assert_close(fast, plain, rtol=0, atol=1e-5)
            for name, grad in plain_grads.items():
                assert (fast_grads[name] - grad).abs().max() <= 1e-4 * grad.abs().max() + 1e-9, name
    finally:
        trained.dit.config.gradient_checkpointing = False
        trained.dit.eval()
        trained.dit.zero_grad(set_to_none=True)
    context = trained.dit.cross_context(Conditioning(text, mask))
    with torch.no_grad():
        torch.testing.assert_close(trained.dit(x, t, context), plain, rtol=0, atol=1e-5)
    assert context.text[0].keys.shape[-1] < 64 * trained.config.dit.num_heads  # attended as 10 keys, not 64
