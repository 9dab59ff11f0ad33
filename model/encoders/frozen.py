"""What every frozen encoder shares: no gradients, eval mode, and whether its weights are random."""

from __future__ import annotations

from torch import nn


class FrozenEncoder(nn.Module):
    """Base for encoders the paper keeps frozen. `random_weights` is True when no pretrained folder was given,
    so reports can say that scores from such a model measure plumbing, not quality."""

    random_weights: bool = True

    def freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenEncoder:
        return super().train(False)  # always eval: dropout off, norms fixed
