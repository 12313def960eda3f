"""FastGAN's light generator (Liu et al. 2021, "Towards Faster and Stabilized GAN Training for High-fidelity
Few-shot Image Synthesis"): few channels at high resolution, and skip-layer excitation.

    z -> transposed conv to (C0, b, b), batch norm, GLU -> [upsample x2, 3x3 conv, batch norm, GLU]* -> 3x3 conv, tanh

Skip-layer excitation (SLE, the paper's sec. 3.1): a low-resolution map gates the channels of a map four
doublings finer (8 -> 128 px in the paper): pool it to 4x4, a 4x4 conv, leaky ReLU, a 1x1 conv and a sigmoid give
one weight per channel of the fine map. Like a residual path it gives the gradient a short way to the early
layers, at the cost of a few 1x1 convs; unlike a residual it adds no activation maps at the fine resolution.
A shallower generator (below 128 px) gates over as many doublings as it has.
GLU (Dauphin et al. 2017) halves the channels of each conv: its second half gates the first.
b is 7 for 28 px images and 4 otherwise, as the DCGAN.
"""
from __future__ import annotations

import torch
from torch import nn

from .dcgan import init_weights, stage_widths
from .layers import base_size
from .spec import ARCHITECTURES, ArchSpec, DefaultRow

SLE_GAP = 4  # doublings between the map that gates and the map it gates


def up_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, 2 * cout, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(2 * cout), nn.GLU(dim=1))


class SkipLayerExcitation(nn.Module):
    def __init__(self, c_low: int, c_high: int):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Conv2d(c_low, c_high, 4, 1, 0, bias=False),
                                  nn.LeakyReLU(0.1), nn.Conv2d(c_high, c_high, 1, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return high * self.gate(low)


class Generator(nn.Module):
    def __init__(self, res: int, channels: int, z_dim: int = 128, width: int = 32):
        super().__init__()
        self.res, self.channels, self.z_dim = res, channels, z_dim
        self.base = base_size(res)
        widths = stage_widths(2 * res, width)  # one per map, from b x b up to res x res
        self.init = nn.Sequential(nn.ConvTranspose2d(z_dim, 2 * widths[0], self.base, 1, 0, bias=False),
                                  nn.BatchNorm2d(2 * widths[0]), nn.GLU(dim=1))
        self.ups = nn.ModuleList(up_block(cin, cout) for cin, cout in zip(widths, widths[1:]))
        # map j (0 = the b x b map) is gated by map j - gap; the first gate comes from the first upsampled map
        self.gap = min(SLE_GAP, len(self.ups) - 1)
        self.sles = nn.ModuleList(SkipLayerExcitation(widths[j - self.gap], widths[j])
                                  for j in range(1 + self.gap, len(widths)))
        self.to_image = nn.Conv2d(widths[-1], channels, 3, 1, 1)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        feats = [self.init(z.view(z.shape[0], -1, 1, 1))]
        for j, up in enumerate(self.ups, start=1):
            x = up(feats[-1])
            if j - self.gap >= 1:
                x = self.sles[j - self.gap - 1](feats[j - self.gap], x)
            feats.append(x)
        return torch.tanh(self.to_image(feats[-1]))


# --- the architecture spec: Projected GAN's pairing, FastGAN's light G with the projected D ------------------------
def build_projected(cfg):
    from .projected import build
    return build(cfg)


ARCHITECTURES.register(ArchSpec(
    "fastgan", "FastGAN's light generator (skip-layer excitation) with the projected discriminator (Projected GAN)",
    build_generator=lambda cfg: Generator(cfg.res, cfg.channels, cfg.z_dim, cfg.width),
    build_discriminator=build_projected,
    rows=(DefaultRow("fastgan", {"width": 32, "batch": 16, "g_lr": 2e-4, "d_lr": 2e-4, "beta1": 0.0, "beta2": 0.99,
                                 "ema": 0.999, "depth": 0, "standing_stats": False, "r1": 0.0}),),
    resolve=lambda cfg: {"d_norm": "none"}))
