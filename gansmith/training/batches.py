"""Batches from a uint8 data set, as a pure function of the step number.

The data set may be in memory or memory-mapped from disk (a streamed one): indexing it reads only the
rows of the batch, through the page cache.

With several ranks (distributed.py), each takes its slice of the same global batch.
The index stream is the concatenation of one random permutation per epoch (seeded by seed and epoch),
and batch `step` takes the next `batch` indices of it. No loader state needs saving: resuming at step
s continues exactly where the run stopped, and data sets smaller than a batch simply wrap around.
"""
from __future__ import annotations

import torch

from ..images import uint8_to_float
from .distributed import rank_slice

SEED_STRIDE = 1_000_003  # a prime: seeds of different runs' streams do not collide for a million steps or epochs


def stream_seed(seed: int, index: int) -> int:
    """The seed of random stream `index` (an epoch's permutation, a step's augmentations) of a run."""
    return seed * SEED_STRIDE + index


class Batches:
    def __init__(self, data, batch: int, seed: int, device: torch.device, rank: int = 0, world: int = 1):
        self.data, self.x = data, data.x
        self.batch, self.seed, self.device = batch, seed, device
        self.rank_slice = rank_slice(batch, rank, world)
        self.n = self.x.shape[0]
        self._perm_epoch, self._perm = -1, None

    def indices(self, step: int) -> torch.Tensor:
        start, end = step * self.batch, (step + 1) * self.batch
        parts = []
        while start < end:
            epoch, offset = divmod(start, self.n)
            take = min(end - start, self.n - offset)
            parts.append(self._permutation(epoch)[offset:offset + take])
            start += take
        return torch.cat(parts)

    def get(self, step: int) -> torch.Tensor:
        """This rank's share of batch `step`, as float N x C x H x W in [-1, 1] on the device, channels-last
        like the networks (trainer.py)."""
        x = self.x[self.indices(step)[self.rank_slice]]
        # reorder the uint8 pixels (a quarter of the bytes); the float conversion keeps the layout
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        return uint8_to_float(x)

    def get_fixed(self, n: int) -> torch.Tensor:
        """The same n real images every time (for comparisons such as the doctor's diversity)."""
        idx = self._permutation(0)[:n] if n <= self.n else torch.arange(n) % self.n
        return uint8_to_float(self.x[idx].to(self.device))

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(stream_seed(self.seed, epoch))
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm
