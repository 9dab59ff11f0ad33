import dataclasses

import pytest
import torch

from model.attention import attention, flash_attention_usable
from model.config import DiTConfig
from model.dit import Conditioning, VideoDiT


def naive_attention(q, k, v, mask):
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    return scores.softmax(-1) @ v


def test_masked_attention_matches_the_definition_and_zeroes_empty_rows():
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 5, 8, generator=generator) for _ in range(3))
    mask = torch.tensor([[True] * 5, [True, True, False, False, False], [False] * 5])
    out = attention(q, k, v, mask)
    torch.testing.assert_close(out[:2], naive_attention(q[:2], k[:2], v[:2], mask[:2]))
    assert torch.equal(out[2], torch.zeros_like(out[2])) and not out.isnan().any()


def test_flash_attention_is_not_used_on_cpu_or_with_masks():
    q = torch.zeros(1, 1, 1, 8)
    assert not flash_attention_usable(q, None)
    assert not flash_attention_usable(q, torch.ones(1, 1, dtype=torch.bool))


def small_dit(**overrides) -> VideoDiT:
    torch.manual_seed(0)
    dit = VideoDiT(dataclasses.replace(DiTConfig(hidden_size=48, depth=2, num_heads=4), **overrides), 12, 16)
    with torch.no_grad():  # make every branch live
        for parameter in dit.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return dit


def dit_inputs():
    generator = torch.Generator().manual_seed(1)
    cond = Conditioning(
        text=torch.randn(2, 6, 16, generator=generator),
        text_mask=torch.ones(2, 6, dtype=torch.bool),
        reference=torch.randn(2, 10, 48, generator=generator),
        reference_mask=torch.ones(2, 10, dtype=torch.bool),
    )
    return torch.randn(2, 12, 4, 8, 8, generator=generator), torch.tensor([0.2, 0.9]), cond


def test_activation_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        dit = small_dit(gradient_checkpointing=checkpointing).train()
        x, t, cond = dit_inputs()
        dit(x, t, cond).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in dit.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1])


def test_bf16_autocast_stays_close_to_fp32():
    dit = small_dit().eval()
    x, t, cond = dit_inputs()
    with torch.no_grad():
        reference = dit(x, t, cond)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = dit(x, t, cond).float()
    assert torch.isfinite(low).all()
    relative = (low - reference).norm() / reference.norm()
    assert relative < 0.05, relative


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_bf16_forward_matches_fp32():
    dit = small_dit().eval().cuda()
    x, t, cond = dit_inputs()
    cond = Conditioning(*(c.cuda() for c in (cond.text, cond.text_mask, cond.reference, cond.reference_mask)))
    with torch.no_grad():
        reference = dit(x.cuda(), t.cuda(), cond)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = dit(x.cuda(), t.cuda(), cond).float()
    assert (low - reference).norm() / reference.norm() < 0.05


def test_wrong_latent_channels_fail_clearly():
    dit = small_dit()
    _, t, cond = dit_inputs()
    with pytest.raises(ValueError, match="latents have 3 channels; expected 12"):
        dit(torch.zeros(2, 3, 4, 8, 8), t, cond)


def test_frame_position_lets_tokens_know_where_they_are():
    """Identical tokens: with RoPE alone every token sees the same scene and gets the same output; with
    frame positions the top row's output differs from the bottom row's in every frame."""
    _, t, cond = dit_inputs()
    flat = torch.ones(2, 12, 4, 8, 8)

    def tokens(video: torch.Tensor) -> torch.Tensor:  # (B, T, H/2, W/2, C*2*2): one output row per token
        return video.unflatten(3, (4, 2)).unflatten(5, (4, 2)).permute(0, 2, 3, 5, 1, 4, 6).flatten(4)

    without = tokens(small_dit()(flat, t, cond))
    torch.testing.assert_close(without, without[:, :1, :1, :1].expand_as(without))
    with_position = tokens(small_dit(frame_position=True)(flat, t, cond))
    assert (with_position[:, :, 0] - with_position[:, :, -1]).abs().amax(dim=-1).min() > 1e-3


def test_frame_position_is_a_fraction_of_the_frame():
    from model.rope import frame_position_embedding

    coarse = frame_position_embedding((1, 2, 2), 32, torch.device("cpu")).reshape(2, 2, 32)
    fine = frame_position_embedding((3, 6, 6), 32, torch.device("cpu")).reshape(3, 6, 6, 32)
    torch.testing.assert_close(coarse[0, 1], fine[2, 1, 4])  # (0.25, 0.75) of the frame at both sizes
    assert not torch.allclose(coarse[0, 0], coarse[1, 0])
