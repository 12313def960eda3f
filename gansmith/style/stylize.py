"""Neural style transfer by optimizing the image (Gatys, Ecker & Bethge 2016), coarse to fine.

Images inside are float RGB tensors 1 x 3 x H x W in pixel units [0, 255] (the range VGG's Caffe weights
were trained on); `size` is the long side of the result in pixels.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm import tqdm

from ..errors import UserError
from . import color
from .losses import Objective, Weights, style_targets, summarize
from .optim import optimize
from .plan import MIN_SIZE, Level, check_memory, fit_long_side, tile_overlap
from .settings import INIT_NAMES, ImageLike, Settings
from .tiles import TiledObjective
from .vgg import VGG19Features, load_vgg19


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
    stylizer = Stylizer(styles, Settings(**options), model)
    content_img = load_image(content)
    levels = stylizer.plan(content_img)
    with progress_bar(levels, progress) as bar:
        return stylizer.run(content_img, levels, bar, on_step)


class Stylizer:
    """One style (or blend of styles) for any number of content images: the network is loaded once and the
    style's Gram targets are computed once per size."""

    def __init__(self, styles: ImageLike | Sequence[ImageLike], settings: Settings,
                 model: VGG19Features | None = None):
        settings.check()
        style_list = [styles] if isinstance(styles, (str, os.PathLike, Image.Image)) else list(styles)
        if not style_list:
            raise UserError("give at least one style image")
        self.settings = settings
        self.blend = _blend(settings.style_blend, len(style_list))
        self.style_imgs = [load_image(s) for s in style_list]
        self.init_img = None if _is_init_name(settings.init) else load_image(settings.init)
        self.bf16 = settings.use_bf16()
        self.model = model or load_vgg19(settings.weights)
        self._grams: dict[int, dict[str, torch.Tensor]] = {}

    def plan(self, content_img: Image.Image, single_scale: bool = False) -> list[Level]:
        """The levels for this content image (a UserError if they do not fit in memory); `single_scale`
        skips the coarse levels and runs `final_steps` at full size (a start that is already good)."""
        levels = check_memory(content_img.size, self.settings)
        return [Level(levels[-1].hw, self.settings.final_steps, levels[-1].tile)] if single_scale else levels

    def run(self, content_img: Image.Image, levels: list[Level], bar: tqdm,
            on_step: Callable[[Step], None] | None = None, init: Image.Image | None = None) -> Image.Image:
        """Optimize level by level; `init` (else `settings.init`) is the starting image."""
        settings, image, iteration = self.settings, None, 0
        init = init if init is not None else self.init_img
        for index, level in enumerate(levels):
            content = to_tensor(content_img, level.hw)
            grams = self.style_grams(level.hw, content)
            if settings.preserve_colors:
                content = color.luminance_rgb(content)
            objective = self._objective(content, grams, level)
            if image is None:
                image = self._initial(content, level.hw, init)
            else:
                image = _upsample(image, level.hw, content if settings.init == "content" else None)
            done = 0
            for terms in optimize(objective.evaluate, image, level.steps, settings.method(level)):
                iteration, done = iteration + 1, done + 1
                _update_bar(bar, level, terms)
                if on_step is not None:
                    on_step(Step(iteration, index, level.hw, terms, image))
            bar.update(level.pixels * (level.steps - done) / 1e6)   # the stopping rule ended it early
        result = image.detach()
        if settings.preserve_colors:
            result = color.with_content_chrominance(result, to_tensor(content_img, levels[-1].hw))
        return tensor_to_pil(result)

    def style_grams(self, hw: tuple[int, int], content: torch.Tensor) -> dict[str, torch.Tensor]:
        """The blended style Gram targets for a level of size `hw`. Without colour options they depend only on
        the style image's size, so they are cached; the colour options adapt the style to each content."""
        settings = self.settings
        style_long = max(MIN_SIZE, round(max(hw) * settings.style_scale))
        adapted = settings.match_histogram or settings.preserve_colors
        if not adapted and style_long in self._grams:
            return self._grams[style_long]
        styles = [to_tensor(s, _style_hw(s.size, style_long)) for s in self.style_imgs]
        if settings.match_histogram:
            styles = [color.match_histogram(s, content) for s in styles]
        if settings.preserve_colors:
            styles = [color.match_luminance(s, content) for s in styles]
        grams = style_targets(self.model, styles, self.blend, settings.style_layers, settings.pooling, self.bf16)
        if not adapted:
            self._grams[style_long] = grams
        return grams

    def _objective(self, content, grams, level: Level):
        s = self.settings
        weights = Weights(content={k: s.content_weight * v for k, v in s.content_layers.items()},
                          style={k: s.style_weight * v for k, v in s.style_layers.items()}, tv=s.tv_weight)
        if level.tile:
            return TiledObjective(self.model, content, grams, weights, level.tile, tile_overlap(level.tile),
                                  s.pooling, self.bf16)
        return Objective(self.model, content, grams, weights, s.pooling, self.bf16)

    def _initial(self, content: torch.Tensor, hw: tuple[int, int], init: Image.Image | None) -> torch.Tensor:
        if init is None and self.settings.init == "content":
            return content.clone()
        if init is None and self.settings.init == "noise":
            generator = torch.Generator().manual_seed(self.settings.seed)
            return torch.rand(content.shape, generator=generator) * 255
        start = to_tensor(self.style_imgs[0] if init is None else init, hw)
        return color.luminance_rgb(start) if self.settings.preserve_colors else start


def _style_hw(size_wh: tuple[int, int], long_side: int) -> tuple[int, int]:
    """The style image's (height, width) at `long_side`, but never thinner than the network's minimum."""
    hw = fit_long_side(size_wh, long_side)
    if min(hw) >= MIN_SIZE:
        return hw
    return fit_long_side(size_wh, math.ceil(long_side * MIN_SIZE / min(hw)))


def _is_init_name(init: ImageLike) -> bool:
    return isinstance(init, str) and init in INIT_NAMES


def _blend(blend: Sequence[float] | None, n: int) -> list[float]:
    if blend is None:
        return [1.0 / n] * n
    blend = [float(b) for b in blend]
    if len(blend) != n:
        raise UserError(f"--style-weights has {len(blend)} value(s) for {n} style image(s)")
    if any(b < 0 or not math.isfinite(b) for b in blend) or sum(blend) <= 0:
        raise UserError("--style-weights must be non-negative numbers, not all zero")
    return [b / sum(blend) for b in blend]


# --- images --------------------------------------------------------------------------------------------

def load_image(source: ImageLike) -> Image.Image:
    """A path or PIL image -> RGB PIL image, EXIF rotation applied. A path is opened under the policy every command
    shares (`data.open_image`: formats, the decompression-bomb limit); unreadable input is a UserError."""
    if isinstance(source, Image.Image):
        image = ImageOps.exif_transpose(source)
    else:
        from ..data import open_image
        image = open_image(source)
    if min(image.size) < 1:
        raise UserError(f"image {getattr(image, 'filename', '') or source} is empty")
    return image.convert("RGB")


def to_tensor(image: Image.Image, hw: tuple[int, int]) -> torch.Tensor:
    """PIL image resized to (height, width) -> float 1 x 3 x H x W in [0, 255]."""
    h, w = hw
    resized = image.resize((w, h), Image.LANCZOS) if image.size != (w, h) else image
    return torch.from_numpy(np.array(resized, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    array = image[0].clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array)


def side_by_side(images: Sequence[Image.Image], height: int = 384, gap: int = 8) -> Image.Image:
    """The images scaled to one height, left to right on white."""
    scaled = [im.resize((max(1, round(im.width * height / im.height)), height), Image.LANCZOS) for im in images]
    strip = Image.new("RGB", (sum(im.width for im in scaled) + gap * (len(scaled) - 1), height), "white")
    x = 0
    for im in scaled:
        strip.paste(im, (x, 0))
        x += im.width + gap
    return strip


def _upsample(image: torch.Tensor, hw: tuple[int, int], content: torch.Tensor | None = None) -> torch.Tensor:
    """The previous level's result at the next level's size (height, width). Given the `content` image at that
    size, the detail band the coarse level could not hold (content minus content blurred to the coarse size)
    is added back, so the fine level starts sharp instead of blurred (measured in docs/style.md)."""
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

def progress_bar(levels: list[Level], enabled: bool) -> tqdm:
    """A bar over the cost (megapixel-iterations) of `levels`: levels differ ~16x in cost per iteration, so
    counting iterations would make the estimated time wrong."""
    return tqdm(total=sum(level.cost for level in levels) / 1e6, unit="Mpx", disable=not enabled,
                dynamic_ncols=True, bar_format="{l_bar}{bar}| {percentage:3.0f}% [{elapsed}<{remaining}{postfix}]")


def _update_bar(bar: tqdm, level: Level, terms: dict[str, float]) -> None:
    if bar.disable:
        return
    s = summarize(terms)
    h, w = level.hw
    bar.set_postfix_str(f"{w}x{h} loss {s['total']:.4g} (content {s['content']:.3g}, "
                        f"style {s['style']:.3g}, tv {s['tv']:.3g})", refresh=False)
    bar.update(level.pixels / 1e6)
