"""What a transfer will do before it starts: the pyramid levels, their iterations and tiling, the memory
they need and the cost used for progress (pixels x iterations)."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..errors import UserError
from ..system import available_memory
from .vgg import layer_names

if TYPE_CHECKING:
    from .settings import Settings

MIN_SIZE = 32            # four poolings before relu5_1 leave 2 x 2 positions
AUTO_TILE = 1024         # tile size for levels that do not fit in memory whole
TILED_HISTORY = 10       # L-BFGS pairs kept at tiled levels: each pair is two full-size images
BASE_MEMORY = 600 * 2 ** 20  # weights, torch, Python


@dataclass
class Level:
    hw: tuple[int, int]   # (height, width)
    steps: int            # iterations (at most: the stopping rule may end the level sooner)
    tile: int = 0         # tile size in pixels; 0 = the whole image goes through the network at once

    @property
    def pixels(self) -> int:
        return self.hw[0] * self.hw[1]

    @property
    def cost(self) -> int:
        """What the progress bar counts: one evaluation costs about the same per pixel at every size."""
        return self.pixels * self.steps

    @property
    def history(self) -> int:
        return TILED_HISTORY if self.tile else 50


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


def steps_per_level(n_levels: int, steps: int, final_steps: int) -> list[int]:
    """`steps` at the coarsest level, `final_steps` at full size, geometric in between. The coarse levels
    are cheap and settle the picture; the full-size level only has to add detail (docs/style.md)."""
    if n_levels == 1:
        return [steps]
    ratio = final_steps / steps
    return [max(1, round(steps * ratio ** (i / (n_levels - 1)))) for i in range(n_levels)]


def plan(content_wh: tuple[int, int], settings: Settings, have: int | None = None) -> list[Level]:
    """The levels of one transfer; a level is tiled when it is above `settings.tile_size` (if set) or when it
    would not fit in `have` bytes (default: the available memory) whole."""
    have = (available_memory() or math.inf) if have is None else have
    hws = pyramid(fit_long_side(content_wh, settings.size), settings.coarse_size, settings.scale_factor)
    steps = steps_per_level(len(hws), settings.steps, settings.final_steps)
    return [Level(hw, n, _tile_for(hw, settings, have)) for hw, n in zip(hws, steps)]


def _tile_for(hw: tuple[int, int], settings: Settings, have: int) -> int:
    if settings.tile_size:
        return settings.tile_size if max(hw) > settings.tile_size else 0
    if max(hw) > AUTO_TILE and estimate_memory(Level(hw, 1), settings) > have:
        return AUTO_TILE
    return 0


def tile_overlap(tile: int) -> int:
    """An eighth of the tile: wide enough for a smooth blend, small enough not to waste much work."""
    return max(8, tile // 8)


def estimate_memory(level: Level, settings: Settings) -> int:
    """Bytes needed at one level: the VGG activations kept for the backward pass (of the whole image or of one
    tile; each layer output once, float32, twice that for the gradients in flight), the optimizer's state,
    and the forward pass over the style image that computes its Gram targets. Meant as an upper bound
    (docs/style.md compares it with measured peaks)."""
    h, w = level.hw
    image = 3 * h * w * 4
    network_hw = (min(h, level.tile), min(w, level.tile)) if level.tile else level.hw
    state = 2 * level.history * image + 4 * image          # L-BFGS pairs; image, gradient, content, average
    if level.tile:
        state += 512 * h * w // 64 * 4 * 2                  # relu4_2 content targets of all tiles, with overlap
    style_long = round(max(h, w) * settings.style_scale)
    style_forward = _style_forward((style_long, style_long), settings)   # square: the worst case
    return 2 * sum(_layer_bytes(network_hw, settings).values()) + max(state, style_forward) + BASE_MEMORY


def _style_forward(hw: tuple[int, int], settings: Settings) -> int:
    """No gradients and each Gram matrix taken as its layer is reached: two layer outputs alive at a time."""
    return 2 * max(_layer_bytes(hw, settings).values())


def _layer_bytes(hw: tuple[int, int], settings: Settings) -> dict[str, int]:
    """float32 bytes of each layer's output, up to the deepest layer the losses use."""
    h, w = hw
    deepest = max(layer_names().index(n) for n in (*settings.content_layers, *settings.style_layers))
    channels, sizes, scale = 3, {}, 1
    for name in layer_names()[:deepest + 1]:
        if name.startswith("conv"):
            channels = {1: 64, 2: 128, 3: 256}.get(int(name[4]), 512)
        if name.startswith("pool"):
            scale *= 2
        sizes[name] = channels * math.ceil(h / scale) * math.ceil(w / scale) * 4
    return sizes


def check_memory(content_wh: tuple[int, int], settings: Settings, have: int | None = None) -> list[Level]:
    """The plan, or a UserError naming the largest --size that fits."""
    have = (available_memory() or math.inf) if have is None else have
    levels = plan(content_wh, settings, have)
    need = max(estimate_memory(level, settings) for level in levels)
    if need <= have:
        return levels
    fits = largest_fitting_size(content_wh, settings, have)
    raise UserError(f"--size {settings.size} needs about {need / 2 ** 30:.1f} GiB of memory but "
                    f"{have / 2 ** 30:.1f} GiB is available; try --size {fits} (about the largest that fits)")


def largest_fitting_size(content_wh: tuple[int, int], settings: Settings, have: int) -> int:
    """Binary search over --size, in steps of 16 px."""
    low, high = MIN_SIZE // 16, settings.size // 16
    while low < high:
        mid = (low + high + 1) // 2
        trial = replace(settings, size=mid * 16)
        if max(estimate_memory(lv, trial) for lv in plan(content_wh, trial, have)) <= have:
            low = mid
        else:
            high = mid - 1
    return low * 16
