"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to every image D sees, real and
fake, in both phases, so D cannot memorize a small data set while G still gets gradients through them.

Each function takes float N x C x H x W in [-1, 1] and a torch.Generator (augmentations are part of the
run's reproducible random stream).
"""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F

AUGMENTATIONS = ("color", "translation", "cutout")
# --augment auto (the default) turns this policy on below SMALL_DATA images (why: docs/defaults.md).
SMALL_DATA = 200
SMALL_DATA_POLICY = "translation,cutout,color"


def auto_policy(n_images: int | None) -> str:
    """What --augment auto means for a data set of n_images (None: unknown, no augmentation)."""
    return SMALL_DATA_POLICY if n_images is not None and n_images < SMALL_DATA else ""


def rand(n: int, x: torch.Tensor, generator) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype, generator=generator)


def color(x, generator):
    x = x + (rand(x.shape[0], x, generator) - 0.5)                       # brightness
    if x.shape[1] == 3:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (rand(x.shape[0], x, generator) * 2) + mean    # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (rand(x.shape[0], x, generator) + 0.5) + mean    # contrast


def translation(x, generator, ratio: float = 0.125):
    """Shift each image by up to ratio * size pixels, filling with zeros (mid-gray)."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device, generator=generator)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device, generator=generator)
    ys = torch.arange(h, device=x.device).view(1, h, 1) + dy       # source row of each output row
    xs = torch.arange(w, device=x.device).view(1, 1, w) + dx
    padded = F.pad(x, (1, 1, 1, 1))
    ys, xs = (ys + 1).clamp(0, h + 1), (xs + 1).clamp(0, w + 1)  # outside the image -> the zero border
    idx = (ys * (w + 2) + xs).view(n, 1, h * w).expand(-1, x.shape[1], -1)
    return padded.flatten(2).gather(2, idx).view_as(x)


def cutout(x, generator, ratio: float = 0.5):
    """Zero a random square of ratio * size in each image (it may hang over the border, as in DiffAugment)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    y0 = torch.randint(-(ch // 2), h - ch // 2, (n, 1, 1), device=x.device, generator=generator)
    x0 = torch.randint(-(cw // 2), w - cw // 2, (n, 1, 1), device=x.device, generator=generator)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


FUNCTIONS = {"color": color, "translation": translation, "cutout": cutout}


def augment(x: torch.Tensor, policy: tuple[str, ...], generator=None) -> torch.Tensor:
    for name in policy:
        x = FUNCTIONS[name](x, generator)
    return x


def parse_policy(text: str | None) -> tuple[str, ...]:
    """'translation,color' (or 'translation+color', which fits in a sweep grid; 'none' or '' for none)."""
    if not text or text.strip() == "none":
        return ()
    names = tuple(n.strip() for n in re.split(r"[,+]", text) if n.strip())
    unknown = [n for n in names if n not in FUNCTIONS]
    if unknown:
        from ..errors import UserError
        raise UserError(f"--augment: unknown augmentation {', '.join(unknown)}; choose from {', '.join(AUGMENTATIONS)}")
    return names
