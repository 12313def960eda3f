"""Networks. Each architecture is a module that registers an `ArchSpec` (spec.py) in `ARCHITECTURES`:

- `dcgan`: DCGAN (Radford et al. 2016), the default.
- `progressive`: progressive growing with fade-in (Karras et al. 2018).
- `msg`: multi-scale gradients, all resolutions at once (Karnewar & Wang 2020).
"""
from __future__ import annotations

from torch import nn

from .spec import ARCHITECTURES, ArchSpec, DefaultRow
from . import dcgan, msg, progressive  # noqa: F401  (each registers its spec)


def build_generator(cfg) -> nn.Module:
    return ARCHITECTURES.get(cfg.arch).build_generator(cfg)


def build_discriminator(cfg) -> nn.Module:
    return ARCHITECTURES.get(cfg.arch).build_discriminator(cfg)


__all__ = ["ARCHITECTURES", "ArchSpec", "DefaultRow", "build_discriminator", "build_generator"]
