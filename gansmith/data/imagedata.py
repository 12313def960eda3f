"""`ImageData`: a loaded data set, uint8 N x C x H x W (in memory, or memory-mapped when streamed), with its origin."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

HASH_CHUNK_BYTES = 64 * 2**20


@dataclass
class ImageData:
    # uint8, N x C x H x W, C in {1, 3}, H == W == res, contiguous, CPU; treat as read-only. A streamed data set's
    # x is memory-mapped from its decoded cache (copy-on-write): rows are read from disk when indexed.
    x: torch.Tensor
    source: str                      # the DATA spec as given
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file or entry name, reason)
    cache_path: Path | None = None   # the decoded cache folder x streams from; None when x is in memory
    known_hash: str | None = field(default=None, repr=False)  # content_hash(), when stored with the cache
    native: tuple[int, int] | None = None  # (res, channels) the images themselves suggest, when known

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

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """uint8 len(indices) x H x W x C, reading only those rows (what metrics use on a streamed data set)."""
        rows = self.x[torch.as_tensor(np.asarray(indices), dtype=torch.long)]
        return np.ascontiguousarray(rows.permute(0, 2, 3, 1).numpy())

    def numpy(self) -> np.ndarray:
        """uint8 N x H x W x C: a contiguous copy of the WHOLE data set (a streamed one is read into memory)."""
        return np.ascontiguousarray(self.x.permute(0, 2, 3, 1).numpy())

    def content_hash(self) -> str:
        """sha256 hex of the shape and the pixel bytes: equal for equal images, whatever the source or storage."""
        return self.known_hash or pixels_hash(self.x.numpy())

    def summary(self) -> dict:
        streamed = {"cache_path": str(self.cache_path)} if self.cache_path else {}
        return {"source": self.source, "n": self.n, "res": self.res, "channels": self.channels,
                "n_skipped": len(self.skipped), **streamed}


def pixels_hash(x: np.ndarray) -> str:
    """sha256 hex of repr(shape) and the C-order bytes of x, read a chunk of rows at a time (x may be a memmap)."""
    digest = hashlib.sha256(repr(tuple(x.shape)).encode())
    rows = max(1, HASH_CHUNK_BYTES // max(1, int(np.prod(x.shape[1:]))))  # uint8: one byte per value
    for start in range(0, len(x), rows):
        digest.update(memoryview(np.ascontiguousarray(x[start:start + rows])).cast("B"))
    return digest.hexdigest()
