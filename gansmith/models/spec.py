"""What an architecture is to the rest of gansmith: one `ArchSpec`, registered in `ARCHITECTURES`.

A spec names its two network builders (config -> nn.Module), its defaults per resolution, the options it owns
(only it uses them; the config refuses them for other architectures), extra validation, and, for architectures
that grow during training, a growth hook. docs/architecture.md shows how to add one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from ..registry import Registry

# The options whose unset value (None) an architecture's defaults fill in.
DEFAULTED = ("width", "batch", "g_lr", "d_lr", "beta1", "beta2", "ema", "depth", "standing_stats", "r1")


@dataclass(frozen=True)
class DefaultRow:
    """The defaults of one range of resolutions: used for res <= max_res (None: any)."""
    label: str                  # for --help, e.g. "dcgan up to 64 px"
    values: dict
    max_res: int | None = None


@dataclass(frozen=True)
class ArchSpec:
    name: str
    help: str
    build_generator: Callable[[object], nn.Module]
    build_discriminator: Callable[[object], nn.Module]
    rows: tuple[DefaultRow, ...]                      # checked in order; the first whose max_res fits applies
    owns: tuple[str, ...] = ()                        # options that only this architecture uses
    resolve: Callable[[object], dict] = field(default=lambda cfg: {})   # more options it decides from the config
    check: Callable[[object], None] = field(default=lambda cfg: None)   # raise UserError on a combination it refuses
    # grow(networks, images_seen, cfg) -> numbers to log; set for architectures that change during training
    grow: Callable[[list, int, object], dict] | None = None
    # pictures(G in eval mode) -> {name: uint8 H x W x C}: what this kind of model can show besides samples
    # (StyleGAN: truncation, style mixing); saved as samples/NAME.png with the sample grids, shown by the report
    pictures: Callable[[nn.Module], dict] | None = None

    def defaults(self, res: int) -> dict:
        for row in self.rows:
            if row.max_res is None or res <= row.max_res:
                return row.values
        raise ValueError(f"{self.name} has no defaults for {res} px")


ARCHITECTURES: Registry[ArchSpec] = Registry("architecture", "--arch")


@dataclass(frozen=True)
class DiscriminatorSpec:
    """A discriminator that can replace any architecture's own (--d-arch)."""
    name: str
    help: str
    build: Callable[[object], nn.Module]


DISCRIMINATORS: Registry[DiscriminatorSpec] = Registry("discriminator", "--d-arch")
