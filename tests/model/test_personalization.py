"""Behaviour of the personalization path: zero-init, locality, entity binding, padding."""

import copy

import pytest
import torch

from model.alchemist import VideoAlchemist
from model.batch import EntityReference
from model.config import preset
from model.dit import Conditioning
from tests.model.conftest import image, randomize_


@pytest.fixture(scope="module")
def noisy_input() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    return torch.randn(1, 48, 8, 8, 8, generator=generator), torch.tensor([0.7])


def velocity(model: VideoAlchemist, prompt: str, entities: list[EntityReference], inputs, background=None):
    cond = model.condition([prompt], [entities], [background])
    with torch.no_grad():
        return model.dit(inputs[0], inputs[1], cond)


def test_fresh_personalization_leaves_the_stage1_model_unchanged(noisy_input):
    torch.manual_seed(0)
    model = VideoAlchemist(preset("tiny")).eval()
    randomize_(model.dit)  # a "stage-1 trained" model...
    with torch.no_grad():  # ...whose personalization branch was never trained: zero output projection
        for block in model.dit.blocks:
            block.zero_cross_attention_outputs()
            randomize_(block.text_attn.to_out, seed=9)
    prompt = "a cat chases a dog"
    model.set_stage(1)
    stage1 = velocity(model, prompt, [EntityReference("cat", image(1))], noisy_input)
    model.set_stage(2)
    stage2 = velocity(model, prompt, [EntityReference("cat", image(1))], noisy_input)
    assert model.condition([prompt], [[EntityReference("cat", image(1))]], [None]).reference is not None
    torch.testing.assert_close(stage2, stage1, rtol=0, atol=0)


def test_reference_image_acts_only_through_personalization_attention(trained, noisy_input):
    prompt = "a cat chases a dog"
    a = velocity(trained, prompt, [EntityReference("cat", image(1))], noisy_input)
    b = velocity(trained, prompt, [EntityReference("cat", image(2))], noisy_input)
    assert (a - b).abs().max() > 1e-4, "a different reference must change the prediction"
    silenced = copy.deepcopy(trained)
    with torch.no_grad():
        for block in silenced.dit.blocks:
            block.ref_attn.to_out.weight.zero_()
            block.ref_attn.to_out.bias.zero_()
    a = velocity(silenced, prompt, [EntityReference("cat", image(1))], noisy_input)
    b = velocity(silenced, prompt, [EntityReference("cat", image(2))], noisy_input)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_permuting_entities_with_their_words_is_invariant(trained, noisy_input):
    prompt = "a cat chases a dog"
    cat, dog = EntityReference("cat", image(1)), EntityReference("dog", image(2))
    forward = velocity(trained, prompt, [cat, dog], noisy_input)
    permuted = velocity(trained, prompt, [dog, cat], noisy_input)
    torch.testing.assert_close(forward, permuted, rtol=1e-5, atol=1e-5)


def test_swapping_references_between_words_changes_the_output(trained, noisy_input):
    prompt = "a cat chases a dog"
    right = velocity(
        trained, prompt, [EntityReference("cat", image(1)), EntityReference("dog", image(2))], noisy_input
    )
    swapped = velocity(
        trained, prompt, [EntityReference("cat", image(2)), EntityReference("dog", image(1))], noisy_input
    )
    assert (right - swapped).abs().max() > 1e-4


def test_without_word_binding_swapping_references_cannot_be_seen():
    """The ablation: with image tokens alone, the model cannot tell which reference belongs to which word."""
    config = preset("tiny")
    config.dit.word_binding = False
    torch.manual_seed(0)
    model = VideoAlchemist(config).eval()
    randomize_(model.dit)
    inputs = (torch.randn(1, 48, 8, 8, 8, generator=torch.Generator().manual_seed(5)), torch.tensor([0.7]))
    prompt = "a cat chases a dog"
    right = velocity(
        model, prompt, [EntityReference("cat", image(1)), EntityReference("dog", image(2))], inputs
    )
    swapped = velocity(
        model, prompt, [EntityReference("cat", image(2)), EntityReference("dog", image(1))], inputs
    )
    torch.testing.assert_close(right, swapped, rtol=1e-5, atol=1e-5)


def test_padding_in_a_batch_does_not_change_a_sample(trained):
    """A sample with one entity, batched beside one with three (so its context is padded), is unchanged."""
    generator = torch.Generator().manual_seed(6)
    x = torch.randn(2, 48, 8, 8, 8, generator=generator)
    t = torch.tensor([0.3, 0.6])
    prompts = ["a cat on grass", "a cat, a dog and a rocket"]
    entities = [
        [EntityReference("cat", image(1))],
        [
            EntityReference("cat", image(3)),
            EntityReference("dog", image(4)),
            EntityReference("rocket", image(5)),
        ],
    ]
    cond = trained.condition(prompts, entities, [None, image(7)])
    assert cond.reference_mask.sum(1).tolist() == [5, 20]  # l = 5 tokens per image
    with torch.no_grad():
        batched = trained.dit(x, t, cond)
        alone = trained.dit(x[:1], t[:1], trained.condition(prompts[:1], entities[:1], [None]))
    torch.testing.assert_close(batched[:1], alone, rtol=1e-5, atol=1e-5)


def test_a_sample_without_references_gets_no_personalization(trained, noisy_input):
    prompt = "a cat chases a dog"
    cond = trained.condition([prompt], [[]], [None])
    assert not cond.reference_mask.any()
    with torch.no_grad():
        empty = trained.dit(*noisy_input, cond)
        no_context = trained.dit(*noisy_input, Conditioning(text=cond.text, text_mask=cond.text_mask))
    torch.testing.assert_close(empty, no_context, rtol=0, atol=0)


def test_background_reference_binds_without_a_word(trained, noisy_input):
    prompt = "a cat chases a dog"
    plain = velocity(trained, prompt, [EntityReference("cat", image(1))], noisy_input)
    with_bg = velocity(trained, prompt, [EntityReference("cat", image(1))], noisy_input, background=image(8))
    assert (plain - with_bg).abs().max() > 1e-4


def test_stage1_freezes_exactly_the_personalization_parameters():
    torch.manual_seed(0)
    model = VideoAlchemist(preset("tiny"))
    personal = {id(p) for p in model.personalization_parameters()}
    model.set_stage(1)
    trainable = {id(p) for p in model.trainable_parameters()}
    assert trainable and not trainable & personal
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    model.set_stage(2)
    assert personal <= {id(p) for p in model.trainable_parameters()}
    with pytest.raises(ValueError, match="stage=3"):
        model.set_stage(3)
