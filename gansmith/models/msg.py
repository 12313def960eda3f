"""MSG-GAN (Karnewar & Wang 2020): multi-scale gradients. G emits an image at every scale, D takes all of
them, each joined at the depth of its own resolution, so gradients reach every G block directly and all
resolutions train at once.

The scales travel as ONE tensor at the final resolution: the lower scales nearest-upsampled and stacked
on the channel axis (coarsest first, the final image last). D average-pools each group back down,
which undoes nearest upsampling exactly. Real images are plain C-channel images: D derives their lower
scales by average pooling, as the paper does. In eval mode G returns only the final image, so sampling,
metrics and export see an ordinary generator.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import EqualizedConv2d, EqualizedLinear, MinibatchStdDev, base_size, conv_act
from .progressive import EQUALIZED_ROW, GeneratorStages, stage_channels, stage_count
from .spec import ARCHITECTURES, ArchSpec, DefaultRow
from ..errors import UserError


class MSGGenerator(GeneratorStages):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        features = self.stage_features(z, self.n_stages - 1)
        final = self.to_rgb[-1](features[-1])
        if not self.training:
            return final
        lower = [F.interpolate(rgb(f), size=self.res, mode="nearest") for rgb, f in zip(self.to_rgb, features[:-1])]
        return torch.cat(lower + [final], dim=1)


class MSGDiscriminator(nn.Module):
    def __init__(self, res: int, channels: int, width: int = 64):
        super().__init__()
        self.res, self.channels, self.base, self.n_stages = res, channels, base_size(res), stage_count(res)
        ch = stage_channels(res, width)
        self.from_rgb = nn.Sequential(EqualizedConv2d(channels, ch[-1], 1), nn.LeakyReLU(0.2))
        # block i works at stage i's resolution; below the top it also takes that scale's image (concat)
        self.blocks = nn.ModuleList(
            nn.Sequential(*conv_act(ch[i] + (channels if i < self.n_stages - 1 else 0), ch[i]),
                          *conv_act(ch[i], ch[i - 1]), nn.AvgPool2d(2))
            for i in range(1, self.n_stages))
        self.final = nn.Sequential(MinibatchStdDev(), *conv_act(ch[0] + channels + 1, ch[0]),
                                   EqualizedConv2d(ch[0], ch[0], self.base), nn.LeakyReLU(0.2))
        self.head = EqualizedLinear(ch[0], 1, gain=1.0)

    def scales(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The image at every scale, coarsest first, from a packed G output or a plain real image."""
        sizes = [self.base * 2 ** s for s in range(self.n_stages)]
        if x.shape[1] == self.channels:  # a real image: its lower scales by average pooling
            return [F.adaptive_avg_pool2d(x, s) for s in sizes[:-1]] + [x]
        groups = x.split(self.channels, dim=1)
        return [F.adaptive_avg_pool2d(g, s) for g, s in zip(groups[:-1], sizes[:-1])] + [groups[-1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = self.scales(x)
        h = self.from_rgb(images[-1])
        for i in range(self.n_stages - 1, 0, -1):
            if i < self.n_stages - 1:
                h = torch.cat([h, images[i]], dim=1)
            h = self.blocks[i - 1](h)
        h = torch.cat([h, images[0]], dim=1)
        return self.head(self.final(h).flatten(1)).squeeze(1)


def refuse_colour_jitter(cfg) -> None:
    if "color" in cfg.augment:
        raise UserError("--arch msg passes all scales as one image to D; use --augment translation,cutout without color")


ARCHITECTURES.register(ArchSpec(
    "msg", "MSG-GAN: G emits every scale, D takes each at its own depth",
    build_generator=lambda cfg: MSGGenerator(cfg.res, cfg.channels, cfg.z_dim, cfg.width),
    build_discriminator=lambda cfg: MSGDiscriminator(cfg.res, cfg.channels, cfg.d_width),
    rows=(DefaultRow("msg", EQUALIZED_ROW.values),), resolve=lambda cfg: {"d_norm": "none"},
    check=refuse_colour_jitter))
