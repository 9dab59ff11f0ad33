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


class UnloadedEncoder(FrozenEncoder):
    """Stands in for a pretrained encoder a run does not need: training on the encode-once cache never calls
    UMT5-XXL or the VAE, so their weights stay on disk. Knows its output width; refuses to be called."""

    random_weights = False

    def __init__(self, name: str, dim: int) -> None:
        super().__init__()
        self.name, self.dim = name, dim

    def refuse(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError(
            f"the {self.name} encoder was not loaded (this model was built for the encode-once cache); "
            f"load it with its encoders to encode or generate"
        )

    forward = encode = decode = refuse
