"""Projected GAN discriminator (Sauer et al. 2021): small discriminators on the features of a frozen ImageNet network.

    images -> (grayscale to RGB, resize to `backbone_res`) -> frozen EfficientNet-Lite0, first `stages` feature maps
           -> CCM: a random, fixed 1x1 conv per map (cross-channel mixing)
           -> CSM: a random, fixed top-down path, each map plus the 1x1-mixed upsampled deeper one (cross-scale
              mixing, a feature pyramid as in Lin et al. 2017)
           -> one small trainable discriminator per map -> patch logits, concatenated: N x K

Pretrained features make D strong from the first step on little data; the random projections spread the
features' information over all channels and scales so that D cannot focus on a few of them (the paper's sec. 3).
Only the per-scale discriminators are trained. The backbone and the mixing weights are non-persistent buffers: they
move with `.to()`, are not `parameters()` and are not in `state_dict()`, which instead records the backbone's
sha256 and the mixing seed; loading a state dict checks both, so a resumed run rebuilds the same D or stops.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from . import efficientnet_lite as effnet
from .dcgan import d_conv, init_weights
from .layers import maybe_spectral_norm
from .spec import DISCRIMINATORS, DiscriminatorSpec

END_SIZE = 8  # the per-scale discriminators downsample to at most this size, then judge 4x4 patches (as the paper)


def buffers_instead_of_parameters(module: nn.Module) -> nn.Module:
    """Turn every parameter of `module` into a non-persistent buffer: a constant that follows `.to()` but is
    neither trained, nor touched by `requires_grad_`, nor saved."""
    for m in module.modules():
        for name, p in list(m._parameters.items()):
            del m._parameters[name]
            if p is not None:
                m.register_buffer(name, p.detach(), persistent=False)
    return module


def scale_discriminator(cin: int, size: int, width: int, norm: str, sn: bool) -> nn.Sequential:
    """Patch logits of one feature map of side `size`: the paper's down blocks (4x4 conv halving the size, batch
    norm, leaky ReLU; the DCGAN D's layer) to at most END_SIZE, then a 4x4 conv to one logit per patch. A map that is
    already small gets one 3x3 conv instead, so every head is non-linear."""
    layers, c = [], cin
    while size > END_SIZE:
        layers += d_conv(c, width, 2, norm, sn)
        c, size = width, size // 2
    if not layers:
        layers += d_conv(cin, width, 1, norm, sn)
    layers.append(maybe_spectral_norm(nn.Conv2d(width, 1, min(4, size), 1, 0), sn))
    return nn.Sequential(*layers)


def random_projection(cin: int, cout: int, generator: torch.Generator) -> torch.Tensor:
    """A fixed random 1x1 conv weight, N(0, 1 / cin): it keeps the features' scale."""
    return torch.randn(cout, cin, 1, 1, generator=generator) / math.sqrt(cin)


class ProjectedDiscriminator(nn.Module):
    """res, channels: the images D judges (N x channels x res x res in [-1, 1]).
    backbone_res: the side images are resized to before the backbone (its features have stride 4 to 32);
    stages: how many of EfficientNet-Lite0's four feature maps to use; mix_channels: the width of the first mixed
    map (each deeper one doubles it, as the paper's "expand"); width: channels of the per-scale discriminators;
    norm "bn" (the paper) or "none" (per-sample, for gradient penalties); sn: spectral normalization;
    seed: the random mixing weights (the same seed rebuilds the same D)."""

    def __init__(self, res: int, channels: int, backbone_res: int = 64, stages: int = 4, mix_channels: int = 32,
                 width: int = 64, norm: str = "bn", sn: bool = True, seed: int = 0):
        super().__init__()
        if not 1 <= stages <= len(effnet.FEATURE_BLOCKS):
            raise UserError(f"stages must be 1 to {len(effnet.FEATURE_BLOCKS)}, got {stages}")
        self.res, self.channels, self.backbone_res, self.stages = res, channels, backbone_res, stages
        self.backbone = buffers_instead_of_parameters(effnet.load_efficientnet_lite0())
        self.register_buffer("backbone_sha256", torch.tensor(list(bytes.fromhex(effnet.WEIGHTS_SHA256)),
                                                             dtype=torch.uint8))
        self.register_buffer("mixing_seed", torch.tensor(seed, dtype=torch.int64))
        mixed = [mix_channels * 2 ** i for i in range(stages)]
        self.register_mixing_weights(seed, effnet.FEATURE_CHANNELS[:stages], mixed)
        sizes = [math.ceil(backbone_res / s) for s in effnet.FEATURE_STRIDES[:stages]]
        self.heads = nn.ModuleList(scale_discriminator(c, s, width, norm, sn) for c, s in zip(mixed, sizes))
        self.heads.apply(init_weights)

    def register_mixing_weights(self, seed: int, feature_channels, mixed) -> None:
        generator = torch.Generator().manual_seed(seed)
        for i, (cin, cout) in enumerate(zip(feature_channels, mixed)):
            self.register_buffer(f"ccm{i}", random_projection(cin, cout, generator), persistent=False)
        for i in range(len(mixed) - 1):  # maps the deeper mixed map (i + 1) to map i's width
            self.register_buffer(f"csm{i}", random_projection(mixed[i + 1], mixed[i], generator), persistent=False)

    def backbone_input(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images (1 or 3 channels) -> RGB at backbone_res, still in [-1, 1] (the backbone's own range)."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.backbone_res or x.shape[-2] != self.backbone_res:
            x = F.interpolate(x, size=(self.backbone_res, self.backbone_res), mode="bilinear", align_corners=False)
        return x

    def mixed_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Images -> the CCM + CSM feature maps, finest first."""
        feats = self.backbone.features(self.backbone_input(x), self.stages)
        ccm = [F.conv2d(f, getattr(self, f"ccm{i}")) for i, f in enumerate(feats)]
        out = [ccm[-1]]
        for i in reversed(range(len(ccm) - 1)):
            deeper = F.interpolate(out[0], size=ccm[i].shape[-2:], mode="bilinear", align_corners=False)
            out.insert(0, ccm[i] + F.conv2d(deeper, getattr(self, f"csm{i}")))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x C x res x res in [-1, 1] -> N x K raw logits (every patch of every scale)."""
        feats = self.mixed_features(x)
        return torch.cat([head(f).flatten(1) for head, f in zip(self.heads, feats)], dim=1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Refuse a state dict trained on another backbone or with other mixing weights: the trained heads only
        make sense on the features they were trained on."""
        sha, seed = state_dict.get(prefix + "backbone_sha256"), state_dict.get(prefix + "mixing_seed")
        if sha is not None and not torch.equal(sha.cpu(), self.backbone_sha256.cpu()):
            raise UserError(f"this discriminator was trained on a different feature network (sha256 "
                            f"{bytes(sha.tolist()).hex()[:12]}..., installed {effnet.WEIGHTS_SHA256[:12]}...)")
        if seed is not None and int(seed) != int(self.mixing_seed):
            raise UserError(f"this discriminator's random projections came from seed {int(seed)}, "
                            f"not {int(self.mixing_seed)}: rebuild it with seed={int(seed)}")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def build(cfg) -> ProjectedDiscriminator:
    """--d-arch projected: heads without batch norm when a gradient penalty is on (penalties are per sample); the
    random mixing weights follow the run's seed."""
    from ..regularizers import REGULARIZERS
    penalized = any(r.network == "D" and r.weight(cfg) > 0 for r in REGULARIZERS)
    return ProjectedDiscriminator(cfg.res, cfg.channels, norm="none" if penalized else "bn", seed=cfg.seed)


class VisionAided(nn.Module):
    """The architecture's own D and the projected D judging side by side (Vision-aided GAN, Kumari et al. 2022):
    the pretrained features bring D's strength early, the own D keeps judging whole images in pixel space. Each
    judge carries half of the loss: the own D's logit is repeated as many times as the projected D has patch
    logits, and the losses average over all logits."""

    def __init__(self, own: nn.Module, projected: ProjectedDiscriminator):
        super().__init__()
        self.own, self.projected = own, projected

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.projected(x)
        own = self.own(x).reshape(len(x), -1).mean(1, keepdim=True)
        return torch.cat([own.expand(-1, patches.shape[1]), patches], dim=1)


def build_vision_aided(cfg) -> VisionAided:
    from . import ARCHITECTURES
    return VisionAided(ARCHITECTURES.get(cfg.arch).build_discriminator(cfg), build(cfg))


DISCRIMINATORS.register(DiscriminatorSpec(
    "projected", "frozen ImageNet EfficientNet-Lite0 features, random fixed mixing, a small D per scale", build))
DISCRIMINATORS.register(DiscriminatorSpec(
    "vision-aided", "the architecture's own D beside the projected D, half of the loss each", build_vision_aided))
