"""A seeded, sharded sampler that can restart in the middle of an epoch.

It yields `(epoch, index)` pairs: the dataset seeds each sample's augmentation from them, so a resumed run
sees exactly the samples (and augmentations) the interrupted run would have seen next.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[tuple[int, int]]):
    """Per-epoch permutation from `seed + epoch`, split round-robin over ranks, starting at `offset`."""

    def __init__(
        self, size: int, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1
    ) -> None:
        if size < 1:
            raise ValueError(f"size={size}: the dataset has no samples to draw from")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.offset = 0, 0

    def set_position(self, epoch: int, offset: int) -> None:
        """Start the next iteration at `offset` indices into `epoch` (this rank's share)."""
        self.epoch, self.offset = epoch, offset

    def indices(self, epoch: int) -> list[int]:
        if self.shuffle:
            order = torch.randperm(
                self.size, generator=torch.Generator().manual_seed(self.seed + epoch)
            ).tolist()
        else:
            order = list(range(self.size))
        # Every rank gets the same count per epoch, wrapping around, so collective steps stay in lockstep.
        per_rank = -(-self.size // self.world_size)
        order = (order * (1 + self.world_size))[: per_rank * self.world_size]
        return order[self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(self.indices(self.epoch)) - self.offset

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        for index in self.indices(epoch)[self.offset :]:
            yield epoch, index
