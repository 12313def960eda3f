"""Networks. `build_models(config)` is the one place that maps a config to a generator and discriminator."""
from __future__ import annotations

from torch import nn

from . import dcgan

ARCHS = ("dcgan",)


def build_generator(cfg) -> nn.Module:
    return dcgan.Generator(cfg.res, cfg.channels, cfg.z_dim, cfg.width, norm=cfg.g_norm)


def build_discriminator(cfg) -> nn.Module:
    return dcgan.Discriminator(cfg.res, cfg.channels, cfg.width, norm=cfg.d_norm, sn=cfg.sn, mbstd=cfg.mbstd)
