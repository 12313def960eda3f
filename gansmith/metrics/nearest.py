"""Memorization check: the training images nearest to each generated sample, and how near is suspicious.

For every sample we find its k nearest training images in Inception-feature space (semantic copies) and in
pixel space (literal copies), both by Euclidean distance.

Which distance is "too near" depends on the data, so it is measured against the data's own spacing:

    ratio = d(sample, nearest training image) / median over training images t of d(t, nearest other training image)

A generator that samples new images from the data distribution puts its samples about as far from the
training set as training images are from each other, so the median ratio is ~1; a generator that copies
training images yields ratios near 0 (this is the leave-one-out form of the data-copying test of Meehan et al.
2020, "A Non-Parametric Test to Detect Data-Copying in Generative Models", with the training set standing in
for held-out data). We chose this over the ratio d(nn1) / d(nn2) of the two nearest training images because
that one is ~1 for an exact copy of an image that has a near-duplicate in the training set, and it is
scale-free only locally. `close_frac` counts samples with ratio < CLOSE_RATIO, a heuristic threshold: the
gallery of the nearest samples is what to look at.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..images import make_grid, upscale_nearest
from .distances import k_smallest

NEAREST_K = 3
CLOSE_RATIO = 0.5
GALLERY_ROWS = 8
GALLERY_MIN_SIZE = 64


@dataclass
class Neighbours:
    index: np.ndarray      # n_samples x k, indices of the nearest training vectors, nearest first
    distance: np.ndarray   # n_samples x k, their Euclidean distances
    ratio: np.ndarray      # n_samples, distance[:, 0] / train_spacing
    train_spacing: float   # median distance of a training vector to its nearest other training vector

    def summary(self, prefix: str) -> dict:
        return {f"{prefix}_ratio_median": float(np.median(self.ratio)),
                f"{prefix}_close_frac": float((self.ratio < CLOSE_RATIO).mean())}


def train_spacing(train: np.ndarray) -> float:
    """Median distance from a training vector to its nearest other training vector."""
    if len(train) < 2:
        raise UserError(f"the nearest-neighbour check needs at least 2 training images, got {len(train)}")
    sq_dists, _ = k_smallest(train, train, 2)  # the nearest is the vector itself
    spacing = float(np.sqrt(np.median(sq_dists[:, 1])))
    if spacing == 0:
        raise UserError("most training images have an exact duplicate; the nearest-neighbour check cannot scale "
                        "distances (deduplicate the data)")
    return spacing


def nearest_neighbours(samples: np.ndarray, train: np.ndarray, k: int = NEAREST_K) -> Neighbours:
    """Nearest training vectors of each sample. Rows may be features (N x D) or images (N x H x W x C)."""
    if samples.shape[1:] != train.shape[1:]:
        raise ValueError(f"samples {samples.shape[1:]} and training vectors {train.shape[1:]} differ in shape")
    sq_dists, index = k_smallest(samples, train, min(k, len(train)))
    distance = np.sqrt(sq_dists)
    spacing = train_spacing(train)
    return Neighbours(index, distance, distance[:, 0] / spacing, spacing)


def _tiles_for_row(sample: np.ndarray, train: np.ndarray, groups: list[np.ndarray]) -> list[np.ndarray]:
    blank = np.full_like(sample, 255)
    tiles = [sample]
    for index in groups:
        tiles += [blank] + [train[i] for i in index]
    return tiles


def nearest_gallery(samples: np.ndarray, train: np.ndarray, by_features: Neighbours,
                    by_pixels: Neighbours | None = None, rows: int = GALLERY_ROWS) -> np.ndarray:
    """One uint8 image: a row per sample, `sample | k nearest by features | k nearest by pixels`, groups
    separated by a blank tile, under a header naming the columns. Shows the samples with the smallest
    feature-space ratio (most copy-like) first."""
    order = np.argsort(by_features.ratio)[:rows]
    tiles = []
    for i in order:
        groups = [by_features.index[i]] + ([by_pixels.index[i]] if by_pixels is not None else [])
        tiles += _tiles_for_row(samples[i], train, groups)
    per_row = len(tiles) // len(order)
    tiles = upscale_nearest(np.stack(tiles), max(samples.shape[1], GALLERY_MIN_SIZE))
    grid = make_grid(tiles, nrow=per_row)
    k = by_features.index.shape[1]
    labels = [("sample", 1), ("nearest by features", k)]
    if by_pixels is not None:
        labels.append(("nearest by pixels", by_pixels.index.shape[1]))
    return np.concatenate([column_header(grid.shape[1], grid.shape[2], tiles.shape[2], labels), grid])


def column_header(width: int, channels: int, tile: int, labels: list[tuple[str, int]], pad: int = 2) -> np.ndarray:
    """A white strip with each label above its group of tiles (groups separated by one blank tile, as in
    `_tiles_for_row`)."""
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default(max(10, tile // 5))
    height = int(font.size * 1.8)
    strip = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(strip)
    column = 0
    for text, span in labels:
        left, right = pad + column * (tile + pad), pad + (column + span) * (tile + pad) - pad
        while len(text) > 3 and draw.textlength(text, font=font) > right - left:
            text = text[:-4] + "…"  # shorten to fit its columns
        draw.text(((left + right) / 2, height / 2), text, fill=0, font=font, anchor="mm")
        column += span + 1
    header = np.asarray(strip)[..., None]
    return np.repeat(header, channels, axis=2)
