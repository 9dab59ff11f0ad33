"""Shared by the model tests: a tiny model whose every branch is live, and small reference images."""

import pytest
import torch

from model.alchemist import VideoAlchemist
from model.config import preset


def randomize_(module: torch.nn.Module, seed: int = 1, scale: float = 0.05) -> None:
    """Give every parameter non-zero values, as training would, so zero-initialised branches are live."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)


def image(seed: int, size: int = 40) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def trained() -> VideoAlchemist:
    """A tiny model whose every branch is live (as after stage 2)."""
    torch.manual_seed(0)
    model = VideoAlchemist(preset("tiny")).eval()
    randomize_(model.dit)
    randomize_(model.binder, seed=2)
    return model
