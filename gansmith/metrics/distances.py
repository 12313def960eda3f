"""Blocked squared Euclidean distances between two sets of vectors (features, or flattened images).

Distance matrices of thousands x thousands of wide vectors do not fit in memory at once, so rows and columns
are processed in blocks of about BLOCK_BYTES, converted to float32 torch one block at a time (uint8 images
stay uint8 until then). Squared distances use |a|^2 + |b|^2 - 2 a.b, one matrix product per block.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

BLOCK_BYTES = 64 * 2**20


def _block_rows(x: np.ndarray) -> int:
    row_bytes = 4 * int(np.prod(x.shape[1:]))
    return max(1, BLOCK_BYTES // row_bytes)


def _rows(x: np.ndarray, start: int, stop: int) -> torch.Tensor:
    return torch.from_numpy(np.array(x[start:stop], dtype=np.float32)).reshape(stop - start, -1)


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d2 = a.square().sum(1, keepdim=True) + b.square().sum(1) - 2 * (a @ b.T)
    return d2.clamp_min_(0)


def sq_dist_blocks(a: np.ndarray, b: np.ndarray) -> Iterator[tuple[slice, Iterator[tuple[slice, torch.Tensor]]]]:
    """For each row block of `a`: (its slice, an iterator of (column slice of `b`, squared distances))."""
    rows_a, rows_b = _block_rows(a), _block_rows(b)

    def columns(block: torch.Tensor):
        for j in range(0, len(b), rows_b):
            stop = min(j + rows_b, len(b))
            yield slice(j, stop), _sq_dists(block, _rows(b, j, stop))

    for i in range(0, len(a), rows_a):
        stop = min(i + rows_a, len(a))
        yield slice(i, stop), columns(_rows(a, i, stop))


def k_smallest(a: np.ndarray, b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `a`, the k smallest squared distances to rows of `b` (ascending) and their indices."""
    values = np.empty((len(a), k), np.float32)
    indices = np.empty((len(a), k), np.int64)
    for rows, blocks in sq_dist_blocks(a, b):
        best_d, best_i = None, None
        for cols, d2 in blocks:
            idx = torch.arange(cols.start, cols.stop).expand_as(d2)
            if best_d is not None:
                d2, idx = torch.cat([best_d, d2], 1), torch.cat([best_i, idx], 1)
            best_d, pos = d2.topk(min(k, d2.shape[1]), dim=1, largest=False)
            best_i = idx.gather(1, pos)
        values[rows], indices[rows] = best_d.numpy(), best_i.numpy()
    return values, indices


def within_any_radius(points: np.ndarray, centers: np.ndarray, sq_radii: np.ndarray) -> np.ndarray:
    """Boolean per point: is it within the (squared) radius of at least one center?"""
    inside = np.zeros(len(points), bool)
    radii = torch.from_numpy(np.asarray(sq_radii, np.float32))
    for rows, blocks in sq_dist_blocks(points, centers):
        hit = torch.zeros(rows.stop - rows.start, dtype=torch.bool)
        for cols, d2 in blocks:
            hit |= (d2 <= radii[cols]).any(1)
        inside[rows] = hit.numpy()
    return inside
