"""Progressive growing (Karras et al. 2018, ProGAN): train at low resolution first, then add a block to
both networks and fade it in (alpha 0 -> 1) while training goes on, up to the final resolution.

Both networks exchange images at the FINAL resolution: G upsamples its current-resolution output
(nearest neighbour) and D average-pools its input down to the current resolution. Average pooling
undoes nearest upsampling exactly, so D sees precisely what G made, while losses, augmentation,
sampling and metrics see one image size for the whole run. The growth stage and alpha are buffers, so
they travel in every checkpoint; the loop sets them from images shown (`schedule`), so a resumed run
continues mid-phase and mid-fade exactly.

As in the paper: equalized learning rate (weights scaled at run time by He's constant), pixel norm in
G, minibatch standard deviation in D.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import EqualizedConv2d, EqualizedLinear, MinibatchStdDev, PixelNorm, base_size, conv_act
from .spec import ARCHITECTURES, ArchSpec, DefaultRow


def schedule(images_seen: int, phase_kimg: float, n_stages: int) -> tuple[int, float]:
    """(stage, alpha) after `images_seen` images: stage 0 trains for one phase; each later stage fades in
    over one phase (alpha 0 -> 1), then trains stable for one phase."""
    t = images_seen / (phase_kimg * 1000)
    stage = min(n_stages - 1, int((t + 1) // 2))
    alpha = 1.0 if stage == 0 else min(1.0, max(0.0, t - (2 * stage - 1)))
    return stage, alpha


def stage_count(res: int) -> int:
    return int(math.log2(res // base_size(res))) + 1


def stage_channels(res: int, width: int) -> list[int]:
    """Feature channels at each stage, from the base resolution up, e.g. 64 px width 32: 256, 256, 128, 64, 32."""
    n = stage_count(res)
    return [min(width * 2 ** (n - 1 - i), width * 8) for i in range(n)]


class Growth:
    """Mixin for nn.Modules that grow: the growth state as buffers (so checkpoints carry it)."""

    def init_growth(self, res: int) -> None:
        self.res, self.base, self.n_stages = res, base_size(res), stage_count(res)
        self.register_buffer("stage", torch.zeros((), dtype=torch.long))
        self.register_buffer("alpha", torch.ones(()))

    def set_growth(self, stage: int, alpha: float) -> None:
        self.stage.fill_(stage)
        self.alpha.fill_(alpha)

    def stage_res(self, stage: int) -> int:
        return self.base * 2 ** stage


class GeneratorStages(nn.Module):
    """The generator trunk shared by progressive growing and MSG-GAN: z -> base map -> one upsampling block
    per stage, and a 1x1 `to_rgb` per stage (Karras et al. 2018)."""

    def __init__(self, res: int, channels: int, z_dim: int, width: int):
        super().__init__()
        self.res, self.base, self.n_stages = res, base_size(res), stage_count(res)
        self.channels, self.z_dim = channels, z_dim
        ch = stage_channels(res, width)
        self.input = nn.Sequential(PixelNorm(), EqualizedLinear(z_dim, ch[0] * self.base ** 2, gain=math.sqrt(2) / 4))
        self.first = nn.Sequential(nn.LeakyReLU(0.2), PixelNorm(), *conv_act(ch[0], ch[0], norm=True))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), *conv_act(ch[i - 1], ch[i], norm=True),
                          *conv_act(ch[i], ch[i], norm=True))
            for i in range(1, self.n_stages))
        self.to_rgb = nn.ModuleList(EqualizedConv2d(c, channels, 1, gain=1.0) for c in ch)

    def stage_features(self, z: torch.Tensor, last_stage: int) -> list[torch.Tensor]:
        """Feature maps of stages 0..last_stage."""
        x = self.first(self.input(z).view(z.shape[0], -1, self.base, self.base))
        features = [x]
        for block in self.blocks[:last_stage]:
            features.append(block(features[-1]))
        return features


class ProgressiveGenerator(GeneratorStages, Growth):
    def __init__(self, res: int, channels: int, z_dim: int = 128, width: int = 64):
        super().__init__(res, channels, z_dim, width)
        self.init_growth(res)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        stage, alpha = int(self.stage), float(self.alpha)
        features = self.stage_features(z, stage)
        image = self.to_rgb[stage](features[-1])
        if stage > 0 and alpha < 1:  # fade in the newest block
            low = F.interpolate(self.to_rgb[stage - 1](features[-2]), scale_factor=2, mode="nearest")
            image = torch.lerp(low, image, alpha)
        return F.interpolate(image, size=self.res, mode="nearest") if image.shape[-1] != self.res else image


class ProgressiveDiscriminator(nn.Module, Growth):
    def __init__(self, res: int, channels: int, width: int = 64):
        super().__init__()
        self.init_growth(res)
        ch = stage_channels(res, width)
        self.from_rgb = nn.ModuleList(nn.Sequential(EqualizedConv2d(channels, c, 1), nn.LeakyReLU(0.2)) for c in ch)
        self.blocks = nn.ModuleList(
            nn.Sequential(*conv_act(ch[i], ch[i]), *conv_act(ch[i], ch[i - 1]), nn.AvgPool2d(2))
            for i in range(1, self.n_stages))
        self.final = nn.Sequential(MinibatchStdDev(), *conv_act(ch[0] + 1, ch[0]),
                                   EqualizedConv2d(ch[0], ch[0], self.base), nn.LeakyReLU(0.2))
        self.head = EqualizedLinear(ch[0], 1, gain=1.0)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        stage, alpha = int(self.stage), float(self.alpha)
        image = F.adaptive_avg_pool2d(image, self.stage_res(stage))  # exact inverse of G's nearest upsampling
        x = self.from_rgb[stage](image)
        for i in range(stage, 0, -1):
            x = self.blocks[i - 1](x)
            if i == stage and alpha < 1:  # fade in the newest block
                x = torch.lerp(self.from_rgb[stage - 1](F.avg_pool2d(image, 2)), x, alpha)
        return self.head(self.final(x).flatten(1)).squeeze(1)


# --- the architecture spec -------------------------------------------------------------------------------
# Equalized learning rates keep weights N(0, 1), which wants ProGAN's lr 1e-3 with betas (0, 0.99).
EQUALIZED_ROW = DefaultRow("progressive", {"width": 16, "batch": 64, "g_lr": 1e-3, "d_lr": 1e-3, "beta1": 0.0,
                                           "beta2": 0.99, "ema": 0.0, "depth": 0, "standing_stats": False,
                                           "r1": 0.0})


def grow(networks: list, images_seen: int, cfg) -> dict:
    """Stage and fade-in alpha as a function of images shown, so resuming mid-fade is exact."""
    stage, alpha = schedule(images_seen, cfg.phase_kimg, networks[0].n_stages)
    for net in networks:
        net.set_growth(stage, alpha)
    return {"stage": stage, "alpha": round(alpha, 4), "current_res": networks[0].stage_res(stage)}


ARCHITECTURES.register(ArchSpec(
    "progressive", "ProGAN: grows both networks from 4x4, fading in each new block (--phase-kimg)",
    build_generator=lambda cfg: ProgressiveGenerator(cfg.res, cfg.channels, cfg.z_dim, cfg.width),
    build_discriminator=lambda cfg: ProgressiveDiscriminator(cfg.res, cfg.channels, cfg.d_width),
    rows=(EQUALIZED_ROW,), owns=("phase_kimg",), resolve=lambda cfg: {"d_norm": "none"}, grow=grow))
