"""Networks. `build_generator` / `build_discriminator` are the one place that maps a config to networks.

- `dcgan`: DCGAN (Radford et al. 2016), the default.
- `progressive`: progressive growing with fade-in (Karras et al. 2018).
- `msg`: multi-scale gradients, all resolutions at once (Karnewar & Wang 2020).
"""
from __future__ import annotations

from torch import nn

from . import dcgan, msg, progressive

ARCHS = ("dcgan", "progressive", "msg")


def build_generator(cfg) -> nn.Module:
    if cfg.arch == "progressive":
        return progressive.ProgressiveGenerator(cfg.res, cfg.channels, cfg.z_dim, cfg.width)
    if cfg.arch == "msg":
        return msg.MSGGenerator(cfg.res, cfg.channels, cfg.z_dim, cfg.width)
    return dcgan.Generator(cfg.res, cfg.channels, cfg.z_dim, cfg.width, norm=cfg.g_norm, depth=cfg.depth)


def build_discriminator(cfg) -> nn.Module:
    if cfg.arch == "progressive":
        return progressive.ProgressiveDiscriminator(cfg.res, cfg.channels, cfg.d_width)
    if cfg.arch == "msg":
        return msg.MSGDiscriminator(cfg.res, cfg.channels, cfg.d_width)
    return dcgan.Discriminator(cfg.res, cfg.channels, cfg.d_width, norm=cfg.d_norm, sn=cfg.sn, mbstd=cfg.mbstd,
                               pack=cfg.pack, depth=cfg.depth)
