"""`load_images`: a DATA spec -> `ImageData` (uint8 N x C x res x res, training-ready).

Files are decoded in a small thread pool (Pillow releases the GIL while decoding and resizing) and
shrunk right away, so memory holds only small images. The resolution and channel count default to
what the data suggests, which is known only after every file is decoded; until then each image is
kept at min(its size, DEFAULT_MAX_RES) and resized once more at the end if needed.

A folder or zip too large for memory streams instead: the same decoding writes each image, at its final
size, to an on-disk cache that is then memory-mapped (`cache.py`). The default res then comes from the
first STREAM_SAMPLE images rather than all of them, and the channel count is settled at the end.
"""
from __future__ import annotations

import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..errors import UserError
from ..system import total_memory
from .arrays import too_big
from .cache import DecodedCache, Draft
from .decode import (FITS, Undecodable, as_array, bomb_warnings_as_errors, decode_image, fit_image, fit_square,
                     is_gray, over_white)
from .imagedata import ImageData
from .specs import Entry, Source, open_spec

SUPPORTED_RES = (28, 32, 64, 128, 256)
DEFAULT_MAX_RES = 64
MAX_BYTES = 8 * 2**30          # the whole data set in memory; larger folders and zips stream (see in_memory_limit)
STREAM_SAMPLE = 1000           # images whose shorter sides choose the default res of a streamed data set
PROGRESS_MIN_FILES = 500
CHUNK = 256                    # files handed to the pool at a time (lets max_images stop early)
WORKERS = min(4, os.cpu_count() or 1)  # decoding threads; Pillow holds the GIL part of the time (docs/defaults.md)
NAMED_SKIPS = 5
TOO_BIG_FILES = "use a smaller res or max_images, or let it stream from disk (stream=None)"
TOO_BIG_ARRAY = "use a smaller res or max_images, or save the images as a folder or .zip, which streams from disk"


class DataWarning(UserWarning):
    """Some files of a data set were skipped (the message names them)."""


def load_images(spec: str, res: int | None = None, channels: int | None = None, fit: str = "crop",
                max_images: int | None = None, progress: bool = True, stream: bool | None = None) -> ImageData:
    """Load a data set (see docs/contracts.md) as uint8 N x C x res x res; skipped files give one DataWarning.

    A folder or zip streams from an on-disk cache with stream=True, or with stream=None (automatic) when
    its decoded size would exceed `in_memory_limit()`; stream=False keeps it in memory or fails. Array files
    (.npz, IDX, builtin) are always read into memory.
    """
    spec = str(spec)  # a pathlib.Path works too
    _check_options(res, channels, fit, max_images)
    with open_spec(spec, MAX_BYTES) as source:
        if source.array is not None:
            data = _from_array(source.array[:max_images], spec, res, channels, fit)
        elif _should_stream(stream, _wanted(source, max_images), res, channels):
            data = _stream_files(source, spec, res, channels, fit, max_images, progress)
        else:
            data = _from_files(source, spec, res, channels, fit, max_images, progress)
    if data.skipped:
        warnings.warn(DataWarning(f"{spec}: skipped {_describe_skips(data.skipped, data.n + len(data.skipped))}"),
                      stacklevel=2)
    return data


def check_image_options(res: int | None, channels: int | None, fit: str) -> None:
    """The one check of the image options (the training config uses it too); None means 'from the data'."""
    if res is not None and res not in SUPPORTED_RES:
        raise UserError(f"--res {res} is not supported; choose one of {', '.join(map(str, SUPPORTED_RES))}")
    if channels not in (None, 1, 3):
        raise UserError(f"--channels must be 1 or 3, not {channels}")
    if fit not in FITS:
        raise UserError(f"--fit must be one of {', '.join(FITS)}, not {fit!r}")


def in_memory_limit() -> int:
    """Largest decoded size (bytes) a folder or zip may have in memory before it streams: MAX_BYTES or a
    quarter of the RAM, whichever is less."""
    ram = total_memory()
    return MAX_BYTES if ram is None else min(MAX_BYTES, ram // 4)


def _should_stream(stream: bool | None, wanted: int, res, channels) -> bool:
    if stream is not None:
        return stream
    return _decoded_bytes(wanted, res, channels) > in_memory_limit()


def _wanted(source: Source, max_images: int | None) -> int:
    return min(len(source.entries), max_images or len(source.entries))


def _decoded_bytes(n: int, res: int | None, channels: int | None) -> int:
    """At most what n images take decoded (the default res is at most DEFAULT_MAX_RES)."""
    return n * (channels or 3) * (res or DEFAULT_MAX_RES) ** 2


def _check_options(res, channels, fit, max_images) -> None:
    check_image_options(res, channels, fit)
    if max_images is not None and max_images < 1:
        raise UserError(f"max_images must be at least 1, not {max_images}")


def default_res(shorter_sides: Sequence[int]) -> int:
    """The largest supported resolution <= min(median shorter side, DEFAULT_MAX_RES); at least the smallest."""
    limit = min(float(np.median(shorter_sides)), DEFAULT_MAX_RES)
    return max((r for r in SUPPORTED_RES if r <= limit), default=SUPPORTED_RES[0])


def _from_array(x: np.ndarray, spec: str, res, channels, fit) -> ImageData:
    if x.shape[-1] == 4:
        x = over_white(x)
    native = (default_res([min(x.shape[1:3])]), 1 if is_gray(x) else 3)
    res, channels = res or native[0], channels or native[1]
    return ImageData(torch.from_numpy(_assemble(x, res, channels, fit, TOO_BIG_ARRAY)), spec, native=native)


def _from_files(source: Source, spec: str, res, channels, fit, max_images, progress) -> ImageData:
    wanted = _wanted(source, max_images)
    # early, optimistic: fail before decoding
    _check_memory(wanted, channels or 1, res or SUPPORTED_RES[0], TOO_BIG_FILES)
    images, sides = [], []

    def keep(image: np.ndarray, shorter_side: int) -> None:
        images.append(image)
        sides.append(shorter_side)

    skipped = source.refused + _decode_entries(source.entries, wanted, res, fit, progress, keep)
    if not images:
        raise _no_images(spec, skipped)
    native = (default_res(sides), max(image.shape[-1] for image in images))  # decoded gray images have 1 channel
    res, channels = res or native[0], channels or native[1]
    return ImageData(torch.from_numpy(_assemble(images, res, channels, fit, TOO_BIG_FILES)), spec, skipped,
                     native=native)


def _stream_files(source: Source, spec: str, res, channels, fit, max_images, progress) -> ImageData:
    """Decode into the on-disk cache (unless an earlier load did) and memory-map it."""
    options = {"res": res, "channels": channels, "fit": fit, "max_images": max_images}
    cache = DecodedCache(spec, options, source.entries)
    with cache.lock():
        data = cache.open(spec)
        if data is None:
            _decode_to_cache(cache, source, spec, res, channels, fit, _wanted(source, max_images), progress)
            data = cache.open(spec)
    if data is None:
        raise UserError(f"{spec}: the decoded data set in {cache.folder} cannot be read back")
    return data


def _decode_to_cache(cache: DecodedCache, source: Source, spec: str, res, channels, fit, wanted: int,
                     progress) -> None:
    needed = _decoded_bytes(wanted, res, channels)
    if channels is None:
        needed += _decoded_bytes(wanted, res, 1)  # the 1-channel copy made if all images are gray
    with cache.decoding(needed) as draft:
        writer = _StreamWriter(draft, res, channels, fit)
        skipped = source.refused + _decode_entries(source.entries, wanted, res, fit, progress, writer.add)
        if not writer.decoded:
            raise _no_images(spec, skipped)
        draft.complete(*writer.finish(), spec, skipped)


class _StreamWriter:
    """Decoded images, in order -> rows of a Draft at the final res, with `channels` or else 3 channels
    (whether all images are gray is known only at the end: see `finish`).

    Without a res, the first STREAM_SAMPLE images are held in memory until their shorter sides choose it.
    """

    def __init__(self, draft: Draft, res: int | None, channels: int | None, fit: str):
        self.draft, self.res, self.channels, self.fit = draft, res, channels, fit
        self.held, self.sides = [], []
        self.written, self.all_gray = 0, True

    def add(self, image: np.ndarray, shorter_side: int) -> None:
        self.all_gray &= image.shape[-1] == 1  # decoded gray images have 1 channel
        if self.res is not None:
            self._write(image)
            return
        self.held.append(image)
        self.sides.append(shorter_side)
        if len(self.held) == STREAM_SAMPLE:
            self._choose_res()

    @property
    def decoded(self) -> int:
        return self.written + len(self.held)

    def finish(self) -> tuple[tuple[int, int, int, int], int]:
        """-> (shape of the rows written, channels to keep: 1 if all were gray and no channels were asked for)."""
        if self.res is None:
            self._choose_res()
        shape = (self.written, self.channels or 3, self.res, self.res)
        return shape, self.channels or (1 if self.all_gray else 3)

    def _choose_res(self) -> None:
        self.res = default_res(self.sides)
        for image in self.held:
            self._write(image)
        self.held, self.sides = [], []

    def _write(self, image: np.ndarray) -> None:
        self.draft.write(fit_image(image, self.res, self.channels or 3, self.fit))
        self.written += 1


def _no_images(spec: str, skipped: list[tuple[str, str]]) -> UserError:
    return UserError(f"{spec}: no decodable images; skipped {_describe_skips(skipped, len(skipped))}")


def _decode_entries(entries: list[Entry], wanted: int, res, fit, progress,
                    keep: Callable[[np.ndarray, int], None]) -> list[tuple[str, str]]:
    """Decode files in order until `wanted` images are decoded, handing each to keep(image H x W x C, shorter
    side) in order; -> the skipped files, as (name, reason)."""
    skipped, decoded = [], 0
    decode = partial(_decode_entry, res=res, fit=fit)
    bar = tqdm(total=len(entries), desc="decoding images", unit="file", file=sys.stderr, leave=False,
               disable=not progress or len(entries) <= PROGRESS_MIN_FILES)
    with bomb_warnings_as_errors(), ThreadPoolExecutor(WORKERS) as pool, bar:
        start = 0
        while start < len(entries) and decoded < wanted:
            # Never more files than images still wanted, so no file past the last one needed is decoded.
            chunk = entries[start:start + min(CHUNK, wanted - decoded)]
            for entry, outcome in zip(chunk, pool.map(decode, chunk)):
                if isinstance(outcome, Undecodable):
                    skipped.append((entry.name, outcome.reason))
                else:
                    keep(*outcome)
                    decoded += 1
            start += len(chunk)
            bar.update(len(chunk))
    return skipped


def _decode_entry(entry: Entry, res: int | None, fit: str) -> tuple[np.ndarray, int] | Undecodable:
    """One file -> (square uint8 H x W x C, C = 1 if gray, shorter side as stored), or why it was skipped."""
    try:
        img, shorter_side = decode_image(entry.read(), draft_size=res or DEFAULT_MAX_RES)
    except Undecodable as e:
        return e
    square_side = min(img.size) if fit == "crop" else max(img.size)
    pixels = as_array(fit_square(img, res or min(square_side, DEFAULT_MAX_RES), fit))
    return (pixels[..., :1].copy() if is_gray(pixels) else pixels), shorter_side


def _assemble(images: Sequence[np.ndarray], res: int, channels: int, fit: str, remedy: str) -> np.ndarray:
    """Images H x W x C (any sizes, C = 1 or 3) -> one contiguous uint8 N x channels x res x res array."""
    _check_memory(len(images), channels, res, remedy)
    x = np.empty((len(images), channels, res, res), dtype=np.uint8)
    for i, image in enumerate(images):
        x[i] = fit_image(image, res, channels, fit)
    return x


def _check_memory(n: int, channels: int, res: int, remedy: str) -> None:
    if n * channels * res * res > MAX_BYTES:
        raise too_big(f"{n} images of {channels}x{res}x{res}", n * channels * res * res, MAX_BYTES, remedy)


def _describe_skips(skipped: list[tuple[str, str]], total: int) -> str:
    """'3 of 120 files: a.txt (not an image), b.png (truncated), ...' naming at most NAMED_SKIPS."""
    named = ", ".join(f"{name} ({reason})" for name, reason in skipped[:NAMED_SKIPS])
    more = f" and {len(skipped) - NAMED_SKIPS} more" if len(skipped) > NAMED_SKIPS else ""
    return f"{len(skipped)} of {total} files: {named}{more}"
