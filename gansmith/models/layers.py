"""Layers shared by the architectures."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class MinibatchStdDev(nn.Module):
    """Append the average standard deviation of features across groups of the batch as one more channel
    (Karras et al. 2018). D can then see a batch's lack of variety, which counters mode collapse."""

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        y = x.view(g, -1, c, h, w)                       # groups of g samples
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt()  # std of each feature within a group
        y = y.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1)       # one number per group
        y = y.repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class PixelNorm(nn.Module):
    """Normalize each pixel's feature vector to unit length (Karras et al. 2018)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


def maybe_spectral_norm(module: nn.Module, enabled: bool) -> nn.Module:
    """Spectral normalization of a layer's weight (Miyato et al. 2018), when enabled."""
    return spectral_norm(module) if enabled else module
