"""Refining an image larger than the network can hold at once, in overlapping tiles.

The image stays one tensor and one optimizer variable; only the gradient is computed tile by tile. Each
tile compares its own content features (the content image cropped the same way) and its own Gram matrices
against the style targets of the whole style image. The tiles' gradients are blended with weights that fade
linearly across the overlaps and sum to 1 at every pixel: the gradient near a tile's edge, where VGG sees
zero padding instead of the neighbouring pixels, counts for little, and no pixel sees a step between
tiles, so no seam can form.
"""
from __future__ import annotations

import math

import torch

from .losses import Objective, Weights
from .vgg import VGG19Features


def spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """[start, stop) of the fewest tiles of at most `tile` pixels that cover `length` overlapping by at least
    `overlap`: equal tiles just large enough, since every pixel a tile holds beyond that is computed twice
    (2048 px in tiles of 1024 overlapping by 128: three tiles of 768 a side, not three of 1024)."""
    if length <= tile:
        return [(0, length)]
    count = math.ceil((length - overlap) / (tile - overlap))
    size = math.ceil((length + (count - 1) * overlap) / count)
    starts = [round(i * (length - size) / (count - 1)) for i in range(count)]
    return [(s, s + size) for s in starts]


def tile_boxes(hw: tuple[int, int], tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(top, bottom, left, right) of every tile of an H x W image."""
    return [(t, b, l, r) for t, b in spans(hw[0], tile, overlap) for l, r in spans(hw[1], tile, overlap)]


def blend_weights(hw: tuple[int, int], boxes, overlap: int) -> list[torch.Tensor]:
    """One weight map per tile (its size), ramping from 0 to 1 over `overlap` pixels from every edge that
    lies inside the image, normalized so that the maps sum to 1 at each pixel."""
    raw = [_ramp(t, b, hw[0], overlap)[:, None] * _ramp(l, r, hw[1], overlap)[None, :]
           for t, b, l, r in boxes]
    total = torch.zeros(hw)
    for (t, b, l, r), w in zip(boxes, raw):
        total[t:b, l:r] += w
    return [w / total[t:b, l:r] for (t, b, l, r), w in zip(boxes, raw)]


def _ramp(start: int, stop: int, length: int, overlap: int) -> torch.Tensor:
    position = torch.arange(stop - start, dtype=torch.float32) + 0.5
    ramp = torch.ones(stop - start)
    if start > 0:
        ramp = torch.minimum(ramp, position / overlap)
    if stop < length:
        ramp = torch.minimum(ramp, (stop - start - position) / overlap)
    return ramp


class TiledObjective:
    """The objective of `losses.Objective` evaluated tile by tile; memory is that of one tile."""

    def __init__(self, model: VGG19Features, content: torch.Tensor, style_grams: dict[str, torch.Tensor],
                 weights: Weights, tile: int, overlap: int, pooling: str = "max", bf16: bool = False):
        self.hw = tuple(content.shape[2:])
        self.boxes = tile_boxes(self.hw, tile, overlap)
        self.blend = blend_weights(self.hw, self.boxes, overlap)
        self.parts = [Objective(model, content[..., t:b, l:r], style_grams, weights, pooling, bf16)
                      for t, b, l, r in self.boxes]

    def evaluate(self, image: torch.Tensor) -> tuple[float, dict[str, float], torch.Tensor]:
        """The blended gradient, scaled like the gradient of a whole-image mean loss; the total and terms
        are the tiles' averages weighted by their share of the blend."""
        grad, terms = torch.zeros_like(image), {}
        area = self.hw[0] * self.hw[1]
        for (t, b, l, r), part, blend in zip(self.boxes, self.parts, self.blend):
            _, part_terms, part_grad = part.evaluate(image[..., t:b, l:r])
            grad[..., t:b, l:r] += blend * part_grad * ((b - t) * (r - l) / area)
            share = float(blend.sum()) / area
            for key, value in part_terms.items():
                terms[key] = terms.get(key, 0.0) + share * value
        return sum(terms.values()), terms, grad
