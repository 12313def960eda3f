"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"), sized for a CPU.

Generator: z -> mapping network (8 layers in the paper, 4 here; lr x 0.01) -> w, one copy per synthesis layer
("ws", N x num_ws x w_dim). The synthesis network starts from a learned constant, and every 3x3 convolution is
modulated by its w (an affine "style" per input channel) and demodulated (output channels rescaled to unit
variance), then gets per-pixel noise with a learned strength. Every resolution adds its 1x1 toRGB output to the
upsampled image so far (the "skip" generator). Design notes and defaults: docs/stylegan.md.

Discriminator: StyleGAN2's residual network with minibatch standard deviation and equalized learning rate.

Training-time behaviour lives in `forward` of a generator in train mode: style mixing (two latents, a random
crossover layer) and the tracked average w (`w_avg`, used by truncation). All randomness comes from torch's
global RNG, so a checkpointed RNG state resumes a run exactly. In eval mode the noise is the fixed `noise_const`
buffers and images are clamped to [-1, 1], so sampling is a pure function of z (and exports to ONNX).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .layers import EqualizedConv2d, EqualizedLinear, MinibatchStdDev, PixelNorm, base_size, conv_act
from .progressive import stage_channels, stage_count
from ..regularizers import REGULARIZERS, Regularizer
from .spec import ARCHITECTURES, ArchSpec, DefaultRow

SUPPORTED_RES = (28, 32, 64, 128, 256)
NOISE_MODES = ("random", "const")


def check_res(res: int) -> None:
    if res not in SUPPORTED_RES:
        raise ValueError(f"StyleGAN supports resolutions {', '.join(map(str, SUPPORTED_RES))}, not {res}")


def upsample(x: torch.Tensor) -> torch.Tensor:
    """2x bilinear upsampling: at exactly 2x this is StyleGAN2's [1, 3, 3, 1] FIR filter (edges replicated
    instead of zero-padded), and it exports to ONNX as a plain Resize."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def style_mix(ws_coarse: torch.Tensor, ws_fine: torch.Tensor, crossover) -> torch.Tensor:
    """ws whose layers before `crossover` (int or 0-d tensor) come from `ws_coarse`, the rest from `ws_fine`."""
    fine = torch.arange(ws_coarse.shape[1], device=ws_coarse.device) >= crossover
    return torch.where(fine[None, :, None], ws_fine, ws_coarse)


class ModulatedConv2d(nn.Module):
    """Convolution whose input channels are scaled by a style from w (modulation) and whose output channels
    are rescaled to the unit variance they would have for unit-variance input (demodulation, StyleGAN2 sec. 2.2).

    Computed as x * style -> conv -> * demod, which equals convolving with per-sample modulated weights, but
    runs as one ordinary convolution for the whole batch (channels-last and ONNX friendly)."""

    def __init__(self, cin: int, cout: int, w_dim: int, kernel: int, demodulate: bool = True):
        super().__init__()
        # gain 1: a demodulated layer is scale-free; toRGB keeps StyleGAN2's 1 / sqrt(fan_in) weight gain
        self.conv = EqualizedConv2d(cin, cout, kernel, padding=kernel // 2, gain=1.0)
        self.affine = EqualizedLinear(w_dim, cin, gain=1.0, bias_init=1.0)  # styles start at 1: plain conv
        self.demodulate = demodulate

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)
        weight = self.conv.weight * self.conv.scale
        x = F.conv2d(x * styles[:, :, None, None].to(x.dtype), weight, padding=self.conv.padding)
        if self.demodulate:
            # sum over (cin, kh, kw) of (weight * style)^2 for every sample and output channel
            sq = styles.float().square() @ weight.float().square().sum(dim=(2, 3)).t()
            x = x * torch.rsqrt(sq + 1e-8)[:, :, None, None].to(x.dtype)
        return x


class SynthesisLayer(nn.Module):
    """(Upsample) -> modulated 3x3 conv -> + noise * strength -> + bias -> leaky ReLU * sqrt(2)."""

    def __init__(self, cin: int, cout: int, w_dim: int, res: int, up: bool):
        super().__init__()
        self.up, self.res = up, res
        self.conv = ModulatedConv2d(cin, cout, w_dim, 3)
        self.noise_strength = nn.Parameter(torch.zeros(()))  # StyleGAN: noise is learned in, starting off
        self.register_buffer("noise_const", torch.randn(res, res))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random",
                noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.up:
            x = upsample(x)
        x = self.conv(x, w)
        if noise is None:
            noise = (torch.randn(x.shape[0], 1, self.res, self.res, device=x.device, dtype=x.dtype)
                     if noise_mode == "random" else self.noise_const)
        x = x + noise.to(x.dtype) * self.noise_strength.to(x.dtype)
        # the sqrt(2) gain keeps the second moment of unit-variance input through the leaky ReLU
        return F.leaky_relu(x + self.conv.conv.bias[None, :, None, None].to(x.dtype), 0.2) * math.sqrt(2)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to image channels, not demodulated (StyleGAN2 fig. 7)."""

    def __init__(self, cin: int, channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(cin, channels, w_dim, 1, demodulate=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.conv.conv.bias[None, :, None, None].to(x.dtype)


class MappingNetwork(nn.Sequential):
    """z -> w: normalize z to unit second moment, then an MLP whose learning rate is 100x lower (StyleGAN
    sec. 2 and appendix C: lr_mul 0.01 keeps w from drifting faster than synthesis can follow)."""

    def __init__(self, z_dim: int, w_dim: int, n_layers: int, lr_mul: float = 0.01):
        layers: list[nn.Module] = [PixelNorm()]
        for i in range(n_layers):
            layers += [EqualizedLinear(z_dim if i == 0 else w_dim, w_dim, lr_mul=lr_mul), nn.LeakyReLU(0.2)]
        super().__init__(*layers)


class StyleGenerator(nn.Module):
    """StyleGAN2 generator. `forward(z, truncation)` -> images N x channels x res x res.

    Layer k of the synthesis network reads ws[:, k]; the toRGB of resolution stage s reads ws[:, 2s + 1] (the
    w of the next stage's first convolution, as in StyleGAN2), so num_ws = 2 * number of stages (14 at 256 px).
    """

    def __init__(self, res: int, channels: int, z_dim: int = 128, w_dim: int = 128, mapping_layers: int = 4,
                 width: int = 16, mixing_prob: float = 0.9, w_avg_beta: float = 0.995):
        super().__init__()
        check_res(res)
        self.res, self.channels, self.z_dim, self.w_dim = res, channels, z_dim, w_dim
        self.mixing_prob, self.w_avg_beta = mixing_prob, w_avg_beta
        n, base = stage_count(res), base_size(res)
        ch = stage_channels(res, width)
        self.num_ws = 2 * n
        self.mapping_net = MappingNetwork(z_dim, w_dim, mapping_layers)
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.register_buffer("pl_mean", torch.zeros(()))  # path-length regularization's running mean (trainer)
        self.const = nn.Parameter(torch.randn(1, ch[0], base, base))
        self.layers = nn.ModuleList([SynthesisLayer(ch[0], ch[0], w_dim, base, up=False)])
        for s in range(1, n):
            self.layers.append(SynthesisLayer(ch[s - 1], ch[s], w_dim, base * 2 ** s, up=True))
            self.layers.append(SynthesisLayer(ch[s], ch[s], w_dim, base * 2 ** s, up=False))
        self.to_rgb = nn.ModuleList(ToRGB(c, channels, w_dim) for c in ch)

    def mapping(self, z: torch.Tensor, truncation: float = 1.0, update_w_avg: bool = True) -> torch.Tensor:
        """ws (N x num_ws x w_dim, one w broadcast to every layer). In train mode the batch's mean w also
        updates `w_avg` (unless update_w_avg is False). truncation psi < 1 pulls w towards `w_avg`
        (StyleGAN app. B: the truncation trick in W): 0 gives the average image, 1 leaves w unchanged."""
        w = self.mapping_net(z)
        if self.training and update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if truncation != 1:
            w = self.w_avg.to(w.dtype).lerp(w, truncation)
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    def random_style_mix(self, z: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        """Style-mixing regularization (StyleGAN sec. 3.1): with probability `mixing_prob` the layers from a
        random crossover on take their w from a second random latent, so that neighbouring styles cannot rely
        on being correlated. One crossover per batch, drawn without a host sync."""
        crossover = torch.randint(1, self.num_ws, (), device=z.device)
        crossover = torch.where(torch.rand((), device=z.device) < self.mixing_prob, crossover, self.num_ws)
        return style_mix(ws, self.mapping(torch.randn_like(z), update_w_avg=False), crossover)

    def styles(self, z: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        """The ws `forward` synthesizes from: `mapping`, plus style mixing in train mode."""
        ws = self.mapping(z, truncation)
        if self.training and self.mixing_prob > 0:
            ws = self.random_style_mix(z, ws)
        return ws

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "random",
                  noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Images (unclamped, trained towards [-1, 1]) from ws. noise_mode "random" draws fresh per-pixel
        noise, "const" uses the fixed `noise_const` buffers; `noise` (one tensor per layer, broadcastable to
        N x 1 x r x r) overrides both (projection optimizes it)."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, not {noise_mode!r}")
        x = self.const.expand(ws.shape[0], -1, -1, -1).to(ws.dtype)
        image = None
        for s, to_rgb in enumerate(self.to_rgb):
            for k in ([0] if s == 0 else [2 * s - 1, 2 * s]):
                x = self.layers[k](x, ws[:, k], noise_mode, None if noise is None else noise[k])
            y = to_rgb(x, ws[:, 2 * s + 1])
            image = y if image is None else upsample(image) + y
        return image

    def forward(self, z: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        image = self.synthesis(self.styles(z, truncation), "random" if self.training else "const")
        # D needs the unclamped image to push G back into range; samples and exports get the contract's range
        return image if self.training else image.clamp(-1, 1)


class ResidualBlock(nn.Module):
    """conv 3x3 -> conv 3x3 -> 2x average pool, plus a 1x1-conv shortcut of the pooled input, summed and
    scaled by 1/sqrt(2) to keep the variance (StyleGAN2 fig. 7c)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.main = nn.Sequential(*conv_act(cin, cin), *conv_act(cin, cout), nn.AvgPool2d(2))
        self.skip = nn.Sequential(nn.AvgPool2d(2), EqualizedConv2d(cin, cout, 1, gain=1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.skip(x)) * math.sqrt(0.5)


class StyleDiscriminator(nn.Module):
    """StyleGAN2's residual discriminator: fromRGB at full resolution, one residual block per halving down to
    the base size, then minibatch stddev, a 3x3 conv and two dense layers. Returns logits of shape (N,)."""

    def __init__(self, res: int, channels: int, width: int = 16):
        super().__init__()
        check_res(res)
        self.res, self.channels = res, channels
        n, base = stage_count(res), base_size(res)
        ch = stage_channels(res, width)
        self.from_rgb = nn.Sequential(*conv_act(channels, ch[-1], kernel=1))
        self.blocks = nn.Sequential(*(ResidualBlock(ch[s], ch[s - 1]) for s in range(n - 1, 0, -1)))
        self.epilogue = nn.Sequential(MinibatchStdDev(), *conv_act(ch[0] + 1, ch[0]), nn.Flatten(),
                                      EqualizedLinear(ch[0] * base * base, ch[0]), nn.LeakyReLU(0.2),
                                      EqualizedLinear(ch[0], 1, gain=1.0))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.epilogue(self.blocks(self.from_rgb(image))).squeeze(1)


def path_length_penalty(G: StyleGenerator, z: torch.Tensor, pl_mean: torch.Tensor,
                        decay: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """Path-length regularization (StyleGAN2 sec. 3.2): a fixed-size step in W should change the image by a
    fixed amount, whatever the direction and the place in W.

    For the images of latents z (with style mixing when G is in train mode, as the G phase sees them) and
    y ~ N(0, I) / sqrt(H * W), a sample's path length is sqrt(mean over layers k of ||d(image . y)/d ws[k]||^2),
    StyleGAN2's estimate of ||J_w^T y||. `pl_mean` is a 0-d float tensor, the running mean of path lengths
    (start at 0; keep it with the training state so resume is exact).

    Returns (penalty, new_pl_mean): penalty = mean over the batch of (length - new_pl_mean)^2, differentiable
    w.r.t. G's parameters; new_pl_mean = pl_mean moved towards the batch's mean length by `decay` (detached).
    The caller weights the penalty (StyleGAN2: weight 2, evaluated every 4th G step on half the batch, times 4).
    Randomness comes from torch's global RNG.
    """
    ws = G.styles(z)
    image = G.synthesis(ws, "random")
    y = torch.randn_like(image) / math.sqrt(image.shape[2] * image.shape[3])
    (grad,) = torch.autograd.grad((image * y).sum(), ws, create_graph=True)
    lengths = grad.float().square().sum(2).mean(1).sqrt()
    new_pl_mean = pl_mean.lerp(lengths.detach().mean(), decay)
    return (lengths - new_pl_mean).square().mean(), new_pl_mean


# --- the architecture spec and its path-length regularizer -------------------------------------------------------
def r1_for(res: int, batch: int = 16) -> float:
    """StyleGAN2-ADA's heuristic R1 weight for a resolution: gamma = 0.0002 res^2 / batch."""
    return round(0.0002 * res * res / batch, 4)


ROWS = tuple(DefaultRow(f"stylegan up to {r} px", {"width": 16, "batch": 16, "g_lr": 2e-3, "d_lr": 2e-3, "beta1": 0.0,
                                                   "beta2": 0.99, "ema": 0.999, "depth": 0, "standing_stats": False,
                                                   "r1": r1_for(r)}, r)
             for r in (32, 64, 128, 256))


def build_generator(cfg) -> StyleGenerator:
    return StyleGenerator(cfg.res, cfg.channels, cfg.z_dim, cfg.w_dim, cfg.mapping_layers, cfg.width, cfg.style_mixing)


PICTURE_SEEDS, TRUNCATIONS = range(8), (1.0, 0.7, 0.4, 0.0)


def pictures(G: StyleGenerator) -> dict:
    """Truncation (rows: psi 1, 0.7, 0.4, 0 for the same seeds) and style mixing (rows 1-3 x columns 10-13)."""
    from ..generate import generate_from_seeds, style_mixing_grid
    from ..images import make_grid
    rows = [generate_from_seeds(G, list(PICTURE_SEEDS), psi) for psi in TRUNCATIONS]
    return {"truncation": make_grid(np.concatenate(rows), nrow=len(PICTURE_SEEDS)),
            "style-mixing": style_mixing_grid(G, [1, 2, 3], [10, 11, 12, 13], G.num_ws // 2)}


ARCHITECTURES.register(ArchSpec(
    "stylegan", "StyleGAN2: mapping network, modulated convolutions, noise, skip outputs; residual D",
    build_generator=build_generator,
    build_discriminator=lambda cfg: StyleDiscriminator(cfg.res, cfg.channels, cfg.d_width),
    rows=ROWS, owns=("w_dim", "mapping_layers", "style_mixing", "pl_weight"), resolve=lambda cfg: {"d_norm": "none"},
    pictures=pictures))

PL_INTERVAL = 4   # StyleGAN2's lazy interval for path-length regularization


def path_length_term(x) -> torch.Tensor:
    """The G-phase penalty: path lengths of half a batch of fresh latents; G.pl_mean keeps the running mean."""
    G = x.G
    z = torch.randn(max(1, x.fake.shape[0] // 2), G.z_dim, device=x.fake.device, generator=x.rng)
    penalty, G.pl_mean = path_length_penalty(G, z, G.pl_mean)
    return penalty


REGULARIZERS.register(Regularizer("pl", "G", lambda cfg: cfg.pl_weight if cfg.arch == "stylegan" else 0.0,
                                  lambda cfg: PL_INTERVAL, path_length_term))
