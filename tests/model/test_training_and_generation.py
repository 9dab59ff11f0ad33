import numpy as np
import pytest
import torch

from model.alchemist import VideoAlchemist
from model.batch import EntityReference, TrainingBatch
from model.binding import EntityWordNotFoundError
from model.blocks import DiTBlock
from model.config import preset
from model.generator import Generator


def image(seed: int, size: int = 40) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def uint8_image(seed: int, size: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def tiny_batch() -> TrainingBatch:
    generator = torch.Generator().manual_seed(3)
    coarse = torch.rand(2, 3, 2, 2, 2, generator=generator) * 2 - 1  # smooth videos: learnable in a few steps
    return TrainingBatch(
        video=torch.nn.functional.interpolate(coarse, size=(8, 32, 32), mode="trilinear"),
        prompts=["a cat chases a dog on grass", "a rocket flies over gravel"],
        entities=[
            [EntityReference("cat", image(10)), EntityReference("dog", image(11))],
            [EntityReference("rocket", image(12))],
        ],
        backgrounds=[None, image(13)],
    )


@pytest.fixture(scope="module")
def generator() -> Generator:
    torch.manual_seed(0)
    return Generator(VideoAlchemist(preset("tiny")))


def test_fresh_block_is_the_identity():
    torch.manual_seed(0)
    block = DiTBlock(48, 4, 192, qk_norm="per_head", personalization=True)
    x = torch.randn(2, 10, 48)
    rope = torch.stack([torch.ones(10, 6), torch.zeros(10, 6)], dim=-1)  # cos 1, sin 0: no rotation
    fresh_time_modulation = torch.zeros(2, 6, 48)  # what a fresh DiT's zero-initialised projection emits
    out = block(
        x,
        fresh_time_modulation,
        rope,
        torch.randn(2, 3, 48),
        torch.ones(2, 3, dtype=torch.bool),
        torch.randn(2, 4, 48),
        torch.ones(2, 4, dtype=torch.bool),
    )
    torch.testing.assert_close(out, x, rtol=0, atol=0)


def test_loss_falls_when_overfitting_one_batch():
    torch.manual_seed(0)
    model = VideoAlchemist(preset("tiny"))
    model.train()
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    batch = tiny_batch()

    def loss_at(seed: int) -> torch.Tensor:
        return model.training_loss(batch, torch.Generator().manual_seed(seed))

    with torch.no_grad():
        before = np.mean([loss_at(s).item() for s in range(4)])
    for step in range(60):
        optimizer.zero_grad()
        loss_at(step % 4).backward()
        optimizer.step()
    with torch.no_grad():
        after = np.mean([loss_at(s).item() for s in range(4)])
    assert after < 0.8 * before, (before, after)


def test_training_loss_is_reproducible_for_a_seed():
    torch.manual_seed(0)
    model = VideoAlchemist(preset("tiny"))
    batch = tiny_batch()
    a = model.training_loss(batch, torch.Generator().manual_seed(1))
    b = model.training_loss(batch, torch.Generator().manual_seed(1))
    c = model.training_loss(batch, torch.Generator().manual_seed(2))
    assert a.item() == b.item() != c.item()


def test_batch_validation():
    with pytest.raises(ValueError, match="prompts has 1 items; expected one per video \\(2\\)"):
        TrainingBatch(
            video=torch.zeros(2, 3, 8, 32, 32), prompts=["a"], entities=[[], []], backgrounds=[None, None]
        )
    with pytest.raises(ValueError, match=r"video must be \(B, 3, T, H, W\)"):
        TrainingBatch(
            video=torch.zeros(2, 8, 32, 32), prompts=["a", "b"], entities=[[], []], backgrounds=[None, None]
        )


def test_generation_is_deterministic_for_a_seed(generator):
    refs = {"cat": [uint8_image(1)], "dog": [uint8_image(2), uint8_image(3, size=64)]}
    a = generator.generate("a cat chases a dog", refs, steps=3, seed=7)
    b = generator.generate("a cat chases a dog", refs, steps=3, seed=7)
    c = generator.generate("a cat chases a dog", refs, steps=3, seed=8)
    assert a.dtype == np.uint8 and a.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).max() > 0


def test_generation_size_follows_arguments(generator):
    video = generator.generate(
        "a cat",
        {"cat": [uint8_image(1)]},
        frames=4,
        height=48,
        width=16,
        steps=2,
        guidance=1.0,
        reference_guidance=2.0,
        background=uint8_image(4),
    )
    assert video.shape == (4, 48, 16, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": "a cat", "references": {"giraffe": [uint8_image(1)]}}, "'giraffe' does not occur"),
        ({"prompt": "   "}, "prompt must be a non-empty string"),
        ({"prompt": "a cat", "height": 30}, "height=30 must be a positive multiple of 8"),
        ({"prompt": "a cat", "steps": 0}, "steps=0 must be in"),
        ({"prompt": "a cat", "references": {"cat": [np.zeros((8, 8, 3), np.float32)]}}, "must be uint8"),
        ({"prompt": "a cat", "references": {"cat": [uint8_image(1)] * 4}}, "has 4 images; expected 1..3"),
        ({"prompt": "a b c d e", "references": {w: [uint8_image(1)] for w in "abcde"}}, "5 entities given"),
    ],
)
def test_bad_generation_requests_fail_clearly(generator, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generator.generate(**{"steps": 1, **kwargs})


def test_a_source_clip_keeps_its_layout_below_strength_one(generator):
    rng = np.random.default_rng(0)
    source = np.zeros((8, 32, 32, 3), np.uint8)
    source[:, 4:14, 6:20] = rng.integers(150, 255, 3, dtype=np.uint8)  # a bright block on black
    refs = {"cat": [uint8_image(1)]}

    def distance(strength: float) -> float:
        video = generator.generate("a cat", refs, steps=4, seed=3, source_video=source, strength=strength)
        return float(np.abs(video.astype(int) - source.astype(int)).mean())

    assert distance(0.1) < distance(0.5) < distance(1.0)
    ignored = generator.generate("a cat", refs, steps=4, seed=3, source_video=source, strength=1.0)
    np.testing.assert_array_equal(ignored, generator.generate("a cat", refs, steps=4, seed=3))
    with pytest.raises(ValueError, match="needs a source_video"):
        generator.generate("a cat", refs, steps=2, strength=0.5)
    with pytest.raises(ValueError, match="expected the output size 8x32x32"):
        generator.generate("a cat", refs, steps=2, source_video=source[:4], strength=0.5)
    with pytest.raises(ValueError, match=r"strength=0.0 must be in \(0, 1\]"):
        generator.generate("a cat", refs, steps=2, source_video=source, strength=0.0)


def test_missing_word_is_its_own_error(generator):
    with pytest.raises(EntityWordNotFoundError):
        generator.generate("a cat", {"dog": [uint8_image(1)]}, steps=1)


def test_save_and_load_round_trip(tmp_path, generator):
    model = generator.model
    model.save_pretrained(tmp_path / "ckpt")
    loaded = Generator.from_pretrained(tmp_path / "ckpt")
    refs = {"cat": [uint8_image(1)]}
    np.testing.assert_array_equal(
        generator.generate("a cat", refs, steps=2, seed=3), loaded.generate("a cat", refs, steps=2, seed=3)
    )
    assert loaded.model.random_weight_encoders() == ["text", "image"]


def test_loading_a_checkpoint_of_another_size_reports_the_mismatch(tmp_path, generator):
    generator.model.save_pretrained(tmp_path / "ckpt")
    config_file = tmp_path / "ckpt" / "config.json"
    config_file.write_text(config_file.read_text().replace('"depth": 2', '"depth": 3'))
    with pytest.raises(ValueError, match="1 missing|missing"):
        VideoAlchemist.from_pretrained(tmp_path / "ckpt")
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        VideoAlchemist.from_pretrained(tmp_path / "nothing")


def test_batched_requests_get_the_videos_they_would_get_alone(generator):
    from model.generator import GenerationRequest

    requests = [
        GenerationRequest("a cat chases a dog", {"cat": [uint8_image(1)], "dog": [uint8_image(2)]}, seed=3),
        GenerationRequest("a rocket", {"rocket": [uint8_image(5)]}, background=uint8_image(6), seed=4),
        GenerationRequest("a plain scene without references", None, seed=5),
    ]
    batched = generator.generate_batch(requests, steps=3, guidance=3.0)
    for request, video in zip(requests, batched, strict=True):
        alone = generator.generate(
            request.prompt, request.references, request.background, steps=3, guidance=3.0, seed=request.seed
        )
        assert np.abs(video.astype(int) - alone.astype(int)).max() <= 1  # equal up to float summation order
    with pytest.raises(ValueError, match="at least one"):
        generator.generate_batch([])
