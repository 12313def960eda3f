"""`load_images`: a DATA spec -> `ImageData` (uint8 N x C x res x res, training-ready).

Files are decoded in a small thread pool (Pillow releases the GIL while decoding and resizing) and
shrunk right away, so memory holds only small images. The resolution and channel count default to
what the data suggests, which is known only after every file is decoded; until then each image is
kept at min(its size, DEFAULT_MAX_RES) and resized once more at the end if needed.
"""
from __future__ import annotations

import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..errors import UserError
from ..images import to_pil
from .decode import (FITS, Undecodable, bomb_warnings_as_errors, decode_image, fit_square, is_gray, over_white,
                     to_channels)
from .arrays import too_big
from .imagedata import ImageData
from .specs import Entry, Source, open_spec

SUPPORTED_RES = (28, 32, 64, 128, 256)
DEFAULT_MAX_RES = 64
MAX_BYTES = 8 * 2**30          # the whole data set in memory; streaming is future work
PROGRESS_MIN_FILES = 500
CHUNK = 256                    # files handed to the pool at a time (lets max_images stop early)
# Measured on 2 busy cores, 10,000 small files: 1 thread 9-10 s, 2 threads 5.6-8 s (Python overhead in
# Pillow holds the GIL part of the time, so more than 4 threads would not pay).
WORKERS = min(4, os.cpu_count() or 1)
NAMED_SKIPS = 5


class DataWarning(UserWarning):
    """Some files of a data set were skipped (the message names them)."""


def load_images(spec: str, res: int | None = None, channels: int | None = None, fit: str = "crop",
                max_images: int | None = None, progress: bool = True) -> ImageData:
    """Load a data set (see docs/contracts.md) as uint8 N x C x res x res; skipped files give one DataWarning."""
    spec = str(spec)  # a pathlib.Path works too
    _check_options(res, channels, fit, max_images)
    with open_spec(spec, MAX_BYTES) as source:
        if source.array is not None:
            x, skipped = _from_array(source.array[:max_images], res, channels, fit), []
        else:
            x, skipped = _from_files(source, spec, res, channels, fit, max_images, progress)
    if skipped:
        warnings.warn(DataWarning(f"{spec}: skipped {_describe_skips(skipped, len(x) + len(skipped))}"),
                      stacklevel=2)
    return ImageData(torch.from_numpy(x), spec, skipped)


def _check_options(res, channels, fit, max_images) -> None:
    if res is not None and res not in SUPPORTED_RES:
        raise UserError(f"unsupported resolution {res} (supported: {', '.join(map(str, SUPPORTED_RES))})")
    if channels not in (None, 1, 3):
        raise UserError(f"channels must be 1 or 3, not {channels}")
    if fit not in FITS:
        raise UserError(f"fit must be one of {', '.join(FITS)}, not '{fit}'")
    if max_images is not None and max_images < 1:
        raise UserError(f"max_images must be at least 1, not {max_images}")


def default_res(shorter_sides: Sequence[int]) -> int:
    """The largest supported resolution <= min(median shorter side, DEFAULT_MAX_RES); at least the smallest."""
    limit = min(float(np.median(shorter_sides)), DEFAULT_MAX_RES)
    return max((r for r in SUPPORTED_RES if r <= limit), default=SUPPORTED_RES[0])


def _from_array(x: np.ndarray, res, channels, fit) -> np.ndarray:
    if x.shape[-1] == 4:
        x = over_white(x)
    res = res or default_res([min(x.shape[1:3])])
    channels = channels or (1 if is_gray(x) else 3)
    return _assemble(x, res, channels, fit)


def _from_files(source: Source, spec: str, res, channels, fit, max_images, progress):
    wanted = min(len(source.entries), max_images or len(source.entries))
    _check_memory(wanted, channels or 1, res or SUPPORTED_RES[0])  # early, optimistic: fail before decoding
    images, sides, skipped = _decode_entries(source.entries, wanted, res, fit, progress)
    skipped = source.refused + skipped
    if not images:
        raise UserError(f"{spec}: no decodable images; skipped {_describe_skips(skipped, len(skipped))}")
    res = res or default_res(sides)
    channels = channels or max(image.shape[-1] for image in images)  # decoded gray images have 1 channel
    return _assemble(images, res, channels, fit), skipped


def _decode_entries(entries: list[Entry], wanted: int, res, fit, progress):
    """Decode files in order until `wanted` images decoded -> (images H x W x C, shorter sides, skipped)."""
    images, sides, skipped = [], [], []
    decode = partial(_decode_entry, res=res, fit=fit)
    bar = tqdm(total=len(entries), desc="decoding images", unit="file", file=sys.stderr, leave=False,
               disable=not progress or len(entries) <= PROGRESS_MIN_FILES)
    with bomb_warnings_as_errors(), ThreadPoolExecutor(WORKERS) as pool, bar:
        start = 0
        while start < len(entries) and len(images) < wanted:
            # Never more files than images still wanted, so no file past the last one needed is decoded.
            chunk = entries[start:start + min(CHUNK, wanted - len(images))]
            for entry, outcome in zip(chunk, pool.map(decode, chunk)):
                if isinstance(outcome, Undecodable):
                    skipped.append((entry.name, outcome.reason))
                else:
                    images.append(outcome[0])
                    sides.append(outcome[1])
            start += len(chunk)
            bar.update(len(chunk))
    return images, sides, skipped


def _decode_entry(entry: Entry, res: int | None, fit: str) -> tuple[np.ndarray, int] | Undecodable:
    """One file -> (square uint8 H x W x C, C = 1 if gray, shorter side as stored), or why it was skipped."""
    try:
        img, shorter_side = decode_image(entry.read(), draft_size=res or DEFAULT_MAX_RES)
    except Undecodable as e:
        return e
    square_side = min(img.size) if fit == "crop" else max(img.size)
    pixels = _as_array(fit_square(img, res or min(square_side, DEFAULT_MAX_RES), fit))
    return (pixels[..., :1].copy() if is_gray(pixels) else pixels), shorter_side


def _as_array(img: Image.Image) -> np.ndarray:
    a = np.asarray(img)
    return a[..., None] if a.ndim == 2 else a


def _assemble(images: Sequence[np.ndarray], res: int, channels: int, fit: str) -> np.ndarray:
    """Images H x W x C (any sizes, C = 1 or 3) -> one contiguous uint8 N x channels x res x res array."""
    _check_memory(len(images), channels, res)
    x = np.empty((len(images), channels, res, res), dtype=np.uint8)
    for i, image in enumerate(images):
        if image.shape[:2] != (res, res):
            image = _as_array(fit_square(to_pil(image), res, fit))
        x[i] = to_channels(image, channels).transpose(2, 0, 1)
    return x


def _check_memory(n: int, channels: int, res: int) -> None:
    if n * channels * res * res > MAX_BYTES:
        raise too_big(f"{n} images of {channels}x{res}x{res}", n * channels * res * res, MAX_BYTES)


def _describe_skips(skipped: list[tuple[str, str]], total: int) -> str:
    """'3 of 120 files: a.txt (not an image), b.png (truncated), ...' naming at most NAMED_SKIPS."""
    named = ", ".join(f"{name} ({reason})" for name, reason in skipped[:NAMED_SKIPS])
    more = f" and {len(skipped) - NAMED_SKIPS} more" if len(skipped) > NAMED_SKIPS else ""
    return f"{len(skipped)} of {total} files: {named}{more}"
