"""The one place where images change representation.

Across module boundaries images are either uint8 numpy arrays N x H x W x C (what files hold) or float
torch tensors N x C x H x W in [-1, 1] (what networks see). Every conversion goes through here.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image


def uint8_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 N x C x H x W (any device) -> float32 in [-1, 1]."""
    return x.float().mul_(2.0 / 255.0).sub_(1.0)


def float_to_uint8(x: torch.Tensor) -> np.ndarray:
    """float N x C x H x W in [-1, 1] -> uint8 numpy N x H x W x C."""
    x = x.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def to_pil(img: np.ndarray) -> Image.Image:
    """One uint8 H x W x C image (C = 1 or 3) -> PIL image."""
    return Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)


GRID_PAD = 2


def grid_size(n: int, h: int, w: int, nrow: int | None = None, pad: int = GRID_PAD) -> tuple[int, int, int]:
    """(height, width, images per row) of the grid `make_grid` tiles n images of h x w into."""
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / nrow) * (h + pad) + pad, nrow * (w + pad) + pad, nrow


def make_grid(images: np.ndarray, nrow: int | None = None, pad: int = GRID_PAD, pad_value: int = 255) -> np.ndarray:
    """Tile uint8 N x H x W x C images into one uint8 image, nrow per row (default: square)."""
    n, h, w, c = images.shape
    height, width, nrow = grid_size(n, h, w, nrow, pad)
    grid = np.full((height, width, c), pad_value, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y:y + h, x:x + w] = images[i]
    return grid


def zoom(images: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour zoom of uint8 N x H x W x C images by a whole factor (for small-image grids)."""
    return images if factor == 1 else images.repeat(factor, axis=1).repeat(factor, axis=2)


def upscale_nearest(images: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upscale of uint8 N x H x W x C images to about size x size (a whole factor)."""
    return zoom(images, max(1, size // images.shape[1]))
