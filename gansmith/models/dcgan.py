"""DCGAN (Radford et al. 2016): a generator of transposed convolutions and a mirrored CNN discriminator.

Generator: z -> linear -> (C0, b, b) -> [transposed conv x2, batch norm, ReLU]* -> transposed conv -> tanh.
Discriminator: [conv /2, (batch norm), leaky ReLU]* -> linear -> one logit.
b is 7 for 28 px images and 4 otherwise; the number of scales follows the resolution, widths scale with `width`.
`depth` adds that many 3x3 convolutions (stride 1, same width) at every hidden scale of both networks, as the
extra layers of the WGAN reference code (Arjovsky et al. 2017); 0 is the classic DCGAN.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from .layers import MinibatchStdDev, PixelNorm, base_size, maybe_spectral_norm
from .spec import ARCHITECTURES, ArchSpec, DefaultRow


def stage_widths(res: int, width: int) -> list[int]:
    """Channel counts from the base feature map up to the last hidden layer, e.g. 64 px: 512, 256, 128, 64."""
    n_up = int(math.log2(res // base_size(res)))
    return [min(width * 2 ** (n_up - 1 - i), width * 8) for i in range(n_up)]


class Generator(nn.Module):
    """norm: "bn" (classic DCGAN) or "pixel" (pixel-wise feature normalization, Karras et al. 2018: per
    sample, so results do not depend on how a batch is split across devices)."""

    def __init__(self, res: int, channels: int, z_dim: int = 128, width: int = 64, norm: str = "bn", depth: int = 0):
        super().__init__()
        self.res, self.channels, self.z_dim = res, channels, z_dim
        self.base = base_size(res)
        widths = stage_widths(res, width)
        self.project = nn.Linear(z_dim, widths[0] * self.base ** 2, bias=norm != "bn")
        self.project_act = nn.Sequential(make_norm(norm, widths[0]), nn.ReLU(inplace=True))
        layers = g_extra_convs(widths[0], norm, depth)
        for cin, cout in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=norm != "bn"), make_norm(norm, cout),
                       nn.ReLU(inplace=True)]
            layers += g_extra_convs(cout, norm, depth)
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(z.shape[0], -1, self.base, self.base)
        return self.body(self.project_act(x))


def make_norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "bn" else PixelNorm()


def g_extra_convs(channels: int, norm: str, depth: int) -> list[nn.Module]:
    """`depth` G layers that keep size and width: 3x3 conv, norm, ReLU."""
    layers = []
    for _ in range(depth):
        layers += [nn.Conv2d(channels, channels, 3, 1, 1, bias=norm != "bn"), make_norm(norm, channels),
                   nn.ReLU(inplace=True)]
    return layers


def d_conv(cin: int, cout: int, stride: int, norm: str, sn: bool) -> list[nn.Module]:
    """One D layer: conv (4x4 halving the size, or 3x3 keeping it), (batch norm), leaky ReLU."""
    kernel = 4 if stride == 2 else 3
    layers = [maybe_spectral_norm(nn.Conv2d(cin, cout, kernel, stride, 1, bias=norm != "bn"), sn)]
    if norm == "bn":
        layers.append(nn.BatchNorm2d(cout))
    return layers + [nn.LeakyReLU(0.2, inplace=True)]


class Discriminator(nn.Module):
    """norm: "bn" (classic DCGAN) or "none" (needed with gradient penalties, which are per-sample);
    sn: spectral normalization on every layer; mbstd: a minibatch standard-deviation channel before the head;
    pack: PacGAN (Lin et al. 2018): each output judges `pack` consecutive samples of the batch stacked along
    channels, so D sees several samples jointly and can tell a collapsed G's look-alikes from real variety."""

    def __init__(self, res: int, channels: int, width: int = 64, norm: str = "bn", sn: bool = False,
                 mbstd: bool = False, pack: int = 1, depth: int = 0):
        super().__init__()
        self.pack = pack
        widths = stage_widths(res, width)[::-1]  # e.g. 64, 128, 256, 512
        layers = d_conv(channels * pack, widths[0], 2, "none", sn)  # no batch norm on the image layer (DCGAN)
        for _ in range(depth):
            layers += d_conv(widths[0], widths[0], 1, norm, sn)
        for cin, cout in zip(widths, widths[1:]):
            layers += d_conv(cin, cout, 2, norm, sn)
            for _ in range(depth):
                layers += d_conv(cout, cout, 1, norm, sn)
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


# --- the architecture spec -------------------------------------------------------------------------------
TINY_RES, SMALL_RES = 28, 64   # the small-image rows below; each row is measured, see docs/defaults.md
SMALL = {"width": 32, "batch": 8, "g_lr": 5e-4, "d_lr": 5e-4, "beta1": 0.5, "beta2": 0.999, "ema": 0.99975,
         "depth": 0, "standing_stats": False, "r1": 0.0}
ROWS = (
    DefaultRow(f"dcgan up to {TINY_RES} px", {**SMALL, "batch": 16, "depth": 1, "standing_stats": True}, TINY_RES),
    DefaultRow(f"dcgan up to {SMALL_RES} px", SMALL, SMALL_RES),
    DefaultRow("dcgan above", {"width": 64, "batch": 64, "g_lr": 2e-4, "d_lr": 2e-4, "beta1": 0.5, "beta2": 0.999,
                               "ema": 0.0, "depth": 0, "standing_stats": False, "r1": 0.0}),
)


def resolve_d_norm(cfg) -> dict:
    """--d-norm auto: no batch norm in D with spectral norm or a gradient penalty (they are per-sample)."""
    if cfg.d_norm != "auto":
        return {}
    from ..regularizers import REGULARIZERS
    penalized = any(r.network == "D" and r.weight(cfg) > 0 for r in REGULARIZERS)
    return {"d_norm": "none" if cfg.sn or penalized else "bn"}


ARCHITECTURES.register(ArchSpec(
    "dcgan", "DCGAN: transposed convolutions up, strided convolutions down",
    build_generator=lambda cfg: Generator(cfg.res, cfg.channels, cfg.z_dim, cfg.width, norm=cfg.g_norm,
                                          depth=cfg.depth),
    build_discriminator=lambda cfg: Discriminator(cfg.res, cfg.channels, cfg.d_width, norm=cfg.d_norm, sn=cfg.sn,
                                                  mbstd=cfg.mbstd, pack=cfg.pack, depth=cfg.depth),
    rows=ROWS, owns=("sn", "mbstd", "pack", "depth", "g_norm", "d_norm"), resolve=resolve_d_norm))
