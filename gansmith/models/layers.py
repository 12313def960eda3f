"""Layers shared by the architectures."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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


def base_size(res: int) -> int:
    """The side of the first feature map: 7 for 28 px images, else 4."""
    return 7 if res % 7 == 0 else 4


class EqualizedConv2d(nn.Module):
    """Conv whose weights are N(0, 1) and scaled by sqrt(2 / fan_in) at run time (equalized learning rate)."""

    def __init__(self, cin: int, cout: int, kernel: int, padding: int = 0, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale, self.padding = gain / math.sqrt(cin * kernel * kernel), padding

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualizedLinear(nn.Module):
    """Linear layer with equalized learning rate. `lr_mul` < 1 slows the layer's learning by that factor under
    Adam (parameters stored divided by it, used multiplied by it), as StyleGAN's mapping network does (Karras et
    al. 2019: lr_mul 0.01); `bias_init` is the bias's initial effective value."""

    def __init__(self, cin: int, cout: int, gain: float = math.sqrt(2), lr_mul: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), bias_init / lr_mul))
        self.scale, self.lr_mul = gain / math.sqrt(cin) * lr_mul, lr_mul

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


def conv_act(cin: int, cout: int, kernel: int = 3, norm: bool = False) -> list[nn.Module]:
    layers = [EqualizedConv2d(cin, cout, kernel, padding=kernel // 2), nn.LeakyReLU(0.2)]
    return layers + [PixelNorm()] if norm else layers
