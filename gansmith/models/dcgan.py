"""DCGAN (Radford et al. 2016): a generator of transposed convolutions and a mirrored CNN discriminator.

Generator: z -> linear -> (C0, b, b) -> [transposed conv x2, batch norm, ReLU]* -> transposed conv -> tanh.
Discriminator: [conv /2, (batch norm), leaky ReLU]* -> linear -> one logit.
b is 7 for 28 px images and 4 otherwise; depth follows the resolution, widths scale with `width`.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from .layers import MinibatchStdDev, PixelNorm, maybe_spectral_norm


def base_size(res: int) -> int:
    return 7 if res % 7 == 0 else 4


def stage_widths(res: int, width: int) -> list[int]:
    """Channel counts from the base feature map up to the last hidden layer, e.g. 64 px: 512, 256, 128, 64."""
    n_up = int(math.log2(res // base_size(res)))
    return [min(width * 2 ** (n_up - 1 - i), width * 8) for i in range(n_up)]


class Generator(nn.Module):
    """norm: "bn" (classic DCGAN) or "pixel" (pixel-wise feature normalization, Karras et al. 2018: per
    sample, so results do not depend on how a batch is split across devices)."""

    def __init__(self, res: int, channels: int, z_dim: int = 128, width: int = 64, norm: str = "bn"):
        super().__init__()
        self.res, self.channels, self.z_dim = res, channels, z_dim
        self.base = base_size(res)
        widths = stage_widths(res, width)
        self.project = nn.Linear(z_dim, widths[0] * self.base ** 2, bias=norm != "bn")
        self.project_act = nn.Sequential(make_norm(norm, widths[0]), nn.ReLU(inplace=True))
        layers = []
        for cin, cout in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=norm != "bn"), make_norm(norm, cout),
                       nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(z.shape[0], -1, self.base, self.base)
        return self.body(self.project_act(x))


def make_norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "bn" else PixelNorm()


class Discriminator(nn.Module):
    """norm: "bn" (classic DCGAN) or "none" (needed with gradient penalties, which are per-sample);
    sn: spectral normalization on every layer; mbstd: a minibatch standard-deviation channel before the head;
    pack: PacGAN (Lin et al. 2018): each output judges `pack` consecutive samples of the batch stacked along
    channels, so D sees several samples jointly and can tell a collapsed G's look-alikes from real variety."""

    def __init__(self, res: int, channels: int, width: int = 64, norm: str = "bn", sn: bool = False,
                 mbstd: bool = False, pack: int = 1):
        super().__init__()
        self.pack = pack
        widths = stage_widths(res, width)[::-1]  # e.g. 64, 128, 256, 512
        layers = [maybe_spectral_norm(nn.Conv2d(channels * pack, widths[0], 4, 2, 1), sn),
                  nn.LeakyReLU(0.2, inplace=True)]
        for cin, cout in zip(widths, widths[1:]):
            layers.append(maybe_spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1, bias=norm != "bn"), sn))
            if norm == "bn":
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        if mbstd:
            layers.append(MinibatchStdDev())
        self.body = nn.Sequential(*layers)
        features = (widths[-1] + int(mbstd)) * base_size(res) ** 2
        self.head = maybe_spectral_norm(nn.Linear(features, 1), sn)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x C x H x W images -> N / pack logits."""
        if self.pack > 1:
            x = x.reshape(x.shape[0] // self.pack, self.pack * x.shape[1], *x.shape[2:])
        return self.head(self.body(x).flatten(1)).squeeze(1)


def init_weights(m: nn.Module) -> None:
    """DCGAN initialization: N(0, 0.02) weights, N(1, 0.02) batch-norm scales."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        # a spectrally normalized layer keeps its raw weight in a parametrization
        weight = m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight
        nn.init.normal_(weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
