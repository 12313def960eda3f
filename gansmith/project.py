"""Projection: find the latent whose image reproduces a given photo (StyleGAN2 sec. 5, Karras et al. 2020).

For a StyleGAN generator the latent is one w ("w", the paper's choice: the result stays a typical image of the
model) or one w per layer ("w+", Abdal et al. 2019: closer reconstructions, less editable), together with the
per-pixel noise maps; for any other generator it is z. The loss is a perceptual distance on VGG19 features
(the weights style transfer uses; an LPIPS-like distance, Zhang et al. 2018, without learned weights) plus a
pixel MSE, and for StyleGAN a penalty that keeps the optimized noise maps free of structure (so the image
content has to come from the latent). The optimization follows StyleGAN2's projector: Adam from the average
latent, learning rate ramped up and down, and decaying noise added to the latent early on to explore.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .data.decode import fit_image
from .errors import UserError
from .images import float_to_uint8
from .models.stylegan import StyleGenerator
from .style.vgg import VGG19Features, load_vgg19

SPACES = ("w", "w+", "z")
VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_4", "relu4_4")
MIN_VGG_SIDE = 64             # small images are upsampled so that relu4_4 still sees an 8 x 8 map
W_SAMPLES = 10_000            # latents for the mean and spread of w, as in StyleGAN2's projector
LATENT_NOISE, NOISE_RAMP = 0.05, 0.75   # explore: latent noise of 0.05 std, fading out over 3/4 of the steps
LR_RAMP_UP, LR_RAMP_DOWN = 0.05, 0.25   # fractions of the steps for the learning-rate warm-up and cosine cool-down


@dataclass
class Projection:
    image: np.ndarray            # uint8 H x W x C, the final image
    latent: torch.Tensor         # ws 1 x num_ws x w_dim ("w": the same w in every layer, "w+") or z 1 x z_dim
    noise: list[torch.Tensor] | None   # StyleGAN: the noise maps to pass to `G.synthesis(latent, noise=...)`
    frames: np.ndarray           # uint8 T x H x W x C: the image every `frame_every` steps, the last one last
    vgg_distance: float          # perceptual distance of the final image to the target
    psnr: float                  # dB, final image vs target, on uint8 pixels


def project(G, target: np.ndarray, steps: int = 500, space: str | None = None, lr: float = 0.1,
            pixel_weight: float = 1.0, noise_weight: float = 1e5, frame_every: int = 1, seed: int = 0,
            vgg: VGG19Features | None = None, vgg_layers: tuple[str, ...] = VGG_LAYERS,
            progress: bool = True) -> Projection:
    """Project `target` (uint8 H x W x C, C = 1 or 3, any size: centre-cropped and resized to G's) into G's
    latent space (`space`: "w" (default for StyleGAN), "w+", or "z" (the only choice for other generators)).
    G stays unchanged; reproducible from `seed`."""
    space = check_options(G, target, steps, space, frame_every)
    device = next(G.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    was_training = G.training
    G.eval()
    try:
        vgg = (vgg or load_vgg19()).to(device)
        target = fit_image(target, G.res, G.channels, "crop")  # C x H x W
        target_x = to_network(target).to(device)
        target_features = features(vgg, target_x, vgg_layers)
        latent, spread, noise = initial_latents(G, space, rng, device)
        optimizer = torch.optim.Adam([latent, *noise], lr=lr, betas=(0.9, 0.999))
        frames, bar = [], tqdm(total=steps, unit="step", desc="projecting", dynamic_ncols=True, disable=not progress)
        for step in range(steps):
            t = step / steps
            for group in optimizer.param_groups:
                group["lr"] = lr * learning_rate_ramp(t)
            explore = spread * LATENT_NOISE * max(0.0, 1 - t / NOISE_RAMP) ** 2
            image = render(G, space, latent + explore * torch.randn(latent.shape, generator=rng).to(device), noise)
            vgg_dist = perceptual_distance(features(vgg, image, vgg_layers), target_features)
            loss = vgg_dist + pixel_weight * F.mse_loss(image, target_x)
            if noise:
                loss = loss + noise_weight * noise_regularization(noise)
            optimizer.zero_grad(set_to_none=True)
            grads = torch.autograd.grad(loss, [latent, *noise])  # not loss.backward(): G's .grad stay untouched
            for p, g in zip([latent, *noise], grads):
                p.grad = g
            optimizer.step()
            normalize_noise(noise)
            if step % frame_every == 0 or step == steps - 1:
                frames.append(float_to_uint8(image)[0])
            bar.set_postfix(vgg=f"{vgg_dist.item():.4f}", refresh=False)
            bar.update()
        bar.close()
        with torch.no_grad():
            final = render(G, space, latent, noise)
            vgg_dist = perceptual_distance(features(vgg, final, vgg_layers), target_features).item()
        frames[-1] = float_to_uint8(final)[0]  # the result itself, after the last update
    finally:
        G.train(was_training)
    image = frames[-1]
    ws_or_z = latent.detach().expand(1, G.num_ws, -1).clone() if space == "w" else latent.detach().clone()
    return Projection(image, ws_or_z, [n.detach().clone() for n in noise] or None, np.stack(frames), vgg_dist,
                      psnr(image, target.transpose(1, 2, 0)))


def check_options(G, target: np.ndarray, steps: int, space: str | None, frame_every: int) -> str:
    """The latent space to use; one-line errors for bad input."""
    style = isinstance(G, StyleGenerator)
    space = space or ("w" if style else "z")
    if space not in SPACES:
        raise UserError(f"unknown latent space {space!r}; choose {', '.join(SPACES)}")
    if space != "z" and not style:
        raise UserError(f"projection into {space} needs a StyleGAN generator; use z for this one")
    if not isinstance(target, np.ndarray) or target.dtype != np.uint8 or target.ndim != 3 \
            or target.shape[2] not in (1, 3):
        raise UserError("the target must be a uint8 H x W x C image with 1 or 3 channels")
    if steps < 1:
        raise UserError(f"the number of projection steps must be at least 1, not {steps}")
    if frame_every < 1:
        raise UserError(f"frame_every must be at least 1, not {frame_every}")
    return space


def to_network(image_chw: np.ndarray) -> torch.Tensor:
    """uint8 C x H x W -> float 1 x C x H x W in [-1, 1]."""
    return torch.from_numpy(image_chw).float().div(127.5).sub(1).unsqueeze(0)


def initial_latents(G, space: str, rng: torch.Generator, device):
    """(latent to optimize, its typical spread, noise maps to optimize). StyleGAN starts from the mean w of
    W_SAMPLES latents (its spread: their RMS distance from it) and random unit noise maps; z starts at 0."""
    if space == "z":
        return torch.zeros(1, G.z_dim, device=device, requires_grad=True), 1.0, []
    with torch.no_grad():
        w = G.mapping(torch.randn(W_SAMPLES, G.z_dim, generator=rng).to(device))[:, 0]
    w_mean = w.mean(0, keepdim=True)
    spread = float((w - w_mean).square().sum(1).mean().sqrt())
    latent = w_mean[:, None] if space == "w" else w_mean[:, None].repeat(1, G.num_ws, 1)
    noise = [torch.randn(1, 1, layer.res, layer.res, generator=rng).to(device).requires_grad_()
             for layer in G.layers]
    return latent.clone().requires_grad_(), spread, noise


def render(G, space: str, latent: torch.Tensor, noise: list[torch.Tensor]) -> torch.Tensor:
    if space == "z":
        return G(latent)
    ws = latent.expand(-1, G.num_ws, -1) if space == "w" else latent
    return G.synthesis(ws, noise=noise)


def learning_rate_ramp(t: float) -> float:
    """Factor of the learning rate at fraction t of the steps: linear warm-up, cosine cool-down to 0."""
    down = min(1.0, (1 - t) / LR_RAMP_DOWN)
    return (0.5 - 0.5 * math.cos(down * math.pi)) * min(1.0, t / LR_RAMP_UP)


def features(vgg: VGG19Features, image: torch.Tensor, layers: tuple[str, ...]) -> list[torch.Tensor]:
    """VGG19 features of a 1 x C x H x W image in [-1, 1] (gray repeated to RGB, small images upsampled),
    each pixel's feature vector scaled to unit length as LPIPS does."""
    rgb255 = (image.expand(-1, 3, -1, -1) + 1) * 127.5
    if rgb255.shape[-1] < MIN_VGG_SIDE:
        rgb255 = F.interpolate(rgb255, size=MIN_VGG_SIDE, mode="bilinear", align_corners=False)
    out = vgg(rgb255, layers)
    return [F.normalize(out[name], dim=1, eps=1e-10) for name in layers]


def perceptual_distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the mean squared difference of unit-length feature vectors (0: identical)."""
    return sum((x - y).square().sum(1).mean() for x, y in zip(a, b))


def noise_regularization(noise: list[torch.Tensor]) -> torch.Tensor:
    """StyleGAN2 sec. 5: the squared autocorrelation of each noise map with itself shifted by one
    pixel, at every scale of a pyramid down to 8 x 8. White noise scores ~0; a map that hides image structure
    (which the latent should explain instead) scores high."""
    total = 0.0
    for n in noise:
        while True:
            total = total + (n * n.roll(1, dims=3)).mean().square() + (n * n.roll(1, dims=2)).mean().square()
            if n.shape[-1] <= 8:
                break
            n = F.avg_pool2d(n, 2)
    return total


@torch.no_grad()
def normalize_noise(noise: list[torch.Tensor]) -> None:
    """Keep every noise map at zero mean and unit variance, so its strength stays the generator's."""
    for n in noise:
        n.sub_(n.mean()).div_(n.square().mean().sqrt())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images in dB (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)
