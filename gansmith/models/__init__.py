"""Networks. Each architecture is a module that registers an `ArchSpec` (spec.py) in `ARCHITECTURES`:

- `dcgan`: DCGAN (Radford et al. 2016), the default.
- `progressive`: progressive growing with fade-in (Karras et al. 2018).
- `msg`: multi-scale gradients, all resolutions at once (Karnewar & Wang 2020).
- `stylegan`: StyleGAN2's generator and residual discriminator (Karras et al. 2020).
- `fastgan`: FastGAN's light generator (Liu et al. 2021) with the projected discriminator (Sauer et al. 2021).
Discriminators that can replace an architecture's own (--d-arch) register a `DiscriminatorSpec`: `projected`,
`vision-aided` (the own D beside the projected D).
"""
from __future__ import annotations

from torch import nn

from .spec import ARCHITECTURES, DISCRIMINATORS, ArchSpec, DefaultRow, DiscriminatorSpec
from . import dcgan, progressive, msg, stylegan, projected, fastgan  # noqa: F401  (each registers its spec)


def build_generator(cfg) -> nn.Module:
    return ARCHITECTURES.get(cfg.arch).build_generator(cfg)


def build_discriminator(cfg) -> nn.Module:
    if getattr(cfg, "d_arch", "auto") != "auto":
        return DISCRIMINATORS.get(cfg.d_arch).build(cfg)
    return ARCHITECTURES.get(cfg.arch).build_discriminator(cfg)


__all__ = ["ARCHITECTURES", "DISCRIMINATORS", "ArchSpec", "DefaultRow", "DiscriminatorSpec", "build_discriminator",
           "build_generator"]
