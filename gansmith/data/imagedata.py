"""`ImageData`: a loaded data set, uint8 N x C x H x W in memory, with where it came from."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class ImageData:
    x: torch.Tensor                  # uint8, N x C x H x W, C in {1, 3}, H == W == res, contiguous, CPU
    source: str                      # the DATA spec as given
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file or entry name, reason)

    def __post_init__(self):
        x = self.x
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] not in (1, 3) or x.shape[2] != x.shape[3]:
            raise ValueError(f"ImageData.x must be uint8 N x C x H x W with C in 1, 3 and H == W; "
                             f"got {x.dtype} {tuple(x.shape)}")

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def res(self) -> int:
        return self.x.shape[2]

    @property
    def channels(self) -> int:
        return self.x.shape[1]

    def numpy(self) -> np.ndarray:
        """uint8 N x H x W x C (a contiguous copy; changing it leaves `x` alone)."""
        return np.ascontiguousarray(self.x.permute(0, 2, 3, 1).numpy())

    def content_hash(self) -> str:
        """sha256 hex of the shape and the pixel bytes: equal for equal images, whatever the source."""
        digest = hashlib.sha256(repr(tuple(self.x.shape)).encode())
        digest.update(memoryview(self.x.contiguous().numpy()).cast("B"))
        return digest.hexdigest()

    def summary(self) -> dict:
        return {"source": self.source, "n": self.n, "res": self.res, "channels": self.channels,
                "n_skipped": len(self.skipped)}
