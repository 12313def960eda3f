"""Safe decoding of one image file's bytes, and the pixel operations every image goes through.

Image bytes come from the user's folders and archives, so they are treated as hostile: only a few
formats are allowed, a failure of any kind while decoding becomes `Undecodable(reason)`, and
Pillow's decompression-bomb limit is enforced (decode inside `bomb_warnings_as_errors()`).
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import UserError
from ..images import to_pil

# Formats Pillow may try. Anything else (EPS runs Ghostscript, for one) is "not an image".
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
# The largest image any command opens: Pillow's decompression-bomb threshold, enforced as an error (not a warning).
# Commands also refuse to write larger images, which they could not read back.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
FITS = ("crop", "pad")
WHITE = 255


class Undecodable(Exception):
    """A file that is skipped; `reason` is a few words for the user."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@contextlib.contextmanager
def bomb_warnings_as_errors():
    """Turn Pillow's DecompressionBombWarning into an error until the block ends.

    Warning filters are process-wide, so this covers decoding in worker threads started inside the block.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def decode_image(data: bytes, draft_size: int | None = None) -> tuple[Image.Image, int]:
    """Decode image bytes to a fully loaded mode "L" or "RGB" image (first frame, EXIF orientation applied).

    Returns the image and the shorter side of the image as stored (before any JPEG draft shrinking).
    `draft_size` lets JPEG decode at a reduced scale that still covers draft_size x draft_size.
    Raises Undecodable for anything that is not a readable image of an allowed format; run it inside
    `bomb_warnings_as_errors()` so that oversized images are refused too.
    """
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)
        shorter_side = min(img.size)
        if draft_size:
            img.draft(None, (draft_size, draft_size))
        img.load()  # decoding is lazy; errors in the pixel data surface only here
        img = to_l_or_rgb(ImageOps.exif_transpose(img))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise Undecodable("too large (decompression bomb?)") from None
    except Image.UnidentifiedImageError:
        raise Undecodable("not an image") from None
    # Pillow's plugins raise many exception types on hostile bytes (OSError, SyntaxError, ValueError,
    # struct.error, EOFError, ...); for untrusted input every one of them means "skip this file".
    except Exception as e:  # noqa: BLE001
        raise Undecodable(_reason_for(e)) from None
    if 0 in img.size:
        raise Undecodable("empty image")
    return img, shorter_side


def open_image(path: str | os.PathLike) -> Image.Image:
    """One image file the user names -> a loaded "L" or "RGB" image, under the policy every command shares (the
    formats, the decompression-bomb limit, EXIF orientation); anything unreadable is a one-line UserError."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError(f"image not found: {path}") from None
    except OSError as e:
        raise UserError(f"cannot read image {path}: {e.strerror or e}") from None
    try:
        with bomb_warnings_as_errors():
            return decode_image(data)[0]
    except Undecodable as e:
        raise UserError(f"cannot read image {path}: {e.reason}") from None


def _reason_for(e: Exception) -> str:
    message = " ".join(str(e).split())
    if "truncated" in message:
        return "truncated"
    if isinstance(e, MemoryError):
        return "too large to decode"
    return f"corrupt ({message[:60] or type(e).__name__})"


def to_l_or_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> "L" or "RGB": transparency composited on white, high bit depths scaled to 8 bits."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode in ("LA", "La", "PA", "RGBA", "RGBa") or (mode == "P" and "transparency" in img.info):
        with_alpha = np.asarray(img.convert("LA" if mode in ("LA", "La") else "RGBA"))
        return to_pil(over_white(with_alpha))
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_scale_to_uint8(np.asarray(img)))
    return img.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV


def _scale_to_uint8(a: np.ndarray) -> np.ndarray:
    """Gray integer (16/32-bit) or float pixels -> uint8 by scaling the value range, never by clipping.

    Integers within 0..65535 are 16-bit data (full scale 65535), floats within 0..1 have full scale 1,
    anything else is stretched from its own min..max.
    """
    lo, hi = float(a.min()), float(a.max())
    full_scale = 1.0 if a.dtype.kind == "f" else 65535.0
    if lo < 0 or hi > full_scale:
        a, full_scale = a - lo, (hi - lo) or 1.0
    return np.rint(a.astype(np.float64) * (255.0 / full_scale)).astype(np.uint8)


def over_white(a: np.ndarray) -> np.ndarray:
    """uint8 pixels with alpha last (... x C+1) -> the colour channels (... x C) composited on white."""
    # uint16 is enough: color * alpha + 255 * (255 - alpha) + 127 <= 65152.
    color, alpha = a[..., :-1].astype(np.uint16), a[..., -1:].astype(np.uint16)
    return ((color * alpha + WHITE * (255 - alpha) + 127) // 255).astype(np.uint8)


def fit_square(img: Image.Image, size: int, fit: str) -> Image.Image:
    """Center-crop ("crop") or pad with white ("pad") to a square, then resize to size x size (Lanczos)."""
    w, h = img.size
    if fit == "pad" and w != h:
        side = max(w, h)
        square = Image.new(img.mode, (side, side), (WHITE,) * len(img.getbands()))
        square.paste(img, ((side - w) // 2, (side - h) // 2))
        img, w, h = square, side, side
    if (w, h) == (size, size):
        return img
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    box = (left, top, left + side, top + side)
    # reducing_gap=3 lets Pillow first shrink by an integer factor: much faster, visually the same (Pillow docs).
    return img.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


def fit_image(a: np.ndarray, res: int, channels: int, fit: str) -> np.ndarray:
    """uint8 H x W x C (C = 1 or 3, any size) -> uint8 channels x res x res, the layout of a loaded data set."""
    if a.shape[:2] != (res, res):
        a = as_array(fit_square(to_pil(a), res, fit))
    return to_channels(a, channels).transpose(2, 0, 1)


def as_array(img: Image.Image) -> np.ndarray:
    """A Pillow image -> uint8 H x W x C (C = 1 for gray)."""
    a = np.asarray(img)
    return a[..., None] if a.ndim == 2 else a


def to_channels(a: np.ndarray, channels: int) -> np.ndarray:
    """uint8 ... x C (C = 1 or 3) -> ... x channels: luminance (Pillow's ITU-R 601 weights) or replicated gray."""
    if a.shape[-1] == channels:
        return a
    if channels == 3:
        return np.repeat(a, 3, axis=-1)
    weights = np.array([19595, 38470, 7471], dtype=np.uint32)  # sum 65536, as in Pillow's RGB -> L
    return ((a.astype(np.uint32) @ weights + 0x8000) >> 16).astype(np.uint8)[..., None]


def is_gray(a: np.ndarray) -> bool:
    """True for uint8 ... x C pixels that are 1-channel or have all channels equal everywhere."""
    return all(np.array_equal(a[..., 0], a[..., c]) for c in range(1, a.shape[-1]))

