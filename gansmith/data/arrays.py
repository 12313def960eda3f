"""Readers for image arrays: `.npz` (array `x`) and MNIST-style IDX files (gzipped or not).

Both return uint8 numpy N x H x W x C (C = 1, 3 or 4) and raise UserError for anything unexpected.
Sizes are checked against `max_bytes` before the pixel data is read, so a hostile header cannot make
us allocate or decompress without bound.
"""
from __future__ import annotations

import gzip
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import UserError

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
GZIP_MAGIC = b"\x1f\x8b"
NPZ_EXPECTED = "uint8 array x of shape (N, H, W) or (N, H, W, C) with C in 1, 3, 4"
ARRAY_REMEDY = ("an array file is read into memory whole: save the images as a folder or .zip instead, "
                "which streams from disk")


def read_npz(path: Path, max_bytes: int) -> np.ndarray:
    size = _npz_x_size(path)
    if size > max_bytes:
        raise too_big(f"{path}: array x", size, max_bytes)
    try:
        with np.load(path, allow_pickle=False) as npz:
            x = npz["x"]
    except Exception as e:  # noqa: BLE001  (np.load raises many types on a damaged file)
        raise UserError(f"cannot read {path}: {' '.join(str(e).split())[:100]}") from None
    if x.dtype != np.uint8 or x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] not in (1, 3, 4)):
        raise UserError(f"{path}: x has dtype {x.dtype} and shape {x.shape}; expected {NPZ_EXPECTED}")
    _require_images(x.shape, path)
    return x if x.ndim == 4 else x[..., None]


def _npz_x_size(path: Path) -> int:
    """Uncompressed size of array x in an .npz (a zip), read before loading it; UserError if there is no x."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "x.npy" not in names:
                found = ", ".join(n.removesuffix(".npy") for n in names) or "nothing"
                raise UserError(f"{path} has no array x (found: {found}); expected {NPZ_EXPECTED}")
            return zf.getinfo("x.npy").file_size
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"cannot read {path} as .npz: {e}") from None


def read_idx_images(path: Path, max_bytes: int) -> np.ndarray:
    """IDX images file (magic 0x00000803) -> uint8 N x H x W x 1."""
    with _open_idx(path) as f:
        n, h, w = _read_header(f, path, IDX_IMAGES_MAGIC, "images")
        if n * h * w > max_bytes:
            raise too_big(f"{path}: {n} images of {h}x{w}", n * h * w, max_bytes)
        _require_images((n, h, w), path)
        pixels = _read_exactly(f, n * h * w, path)
    return np.frombuffer(pixels, dtype=np.uint8).reshape(n, h, w, 1)


def read_idx_labels(path: Path) -> np.ndarray:
    """IDX labels file (magic 0x00000801) -> uint8 N, after checking they are all there."""
    with _open_idx(path) as f:
        (n,) = _read_header(f, path, IDX_LABELS_MAGIC, "labels")
        return np.frombuffer(_read_exactly(f, n, path), dtype=np.uint8)


def _open_idx(path: Path):
    try:
        with open(path, "rb") as f:
            compressed = f.read(2) == GZIP_MAGIC
        return gzip.open(path, "rb") if compressed else open(path, "rb")
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None


def _read_header(f, path: Path, magic: int, kind: str) -> tuple[int, ...]:
    """Check the magic number (its last byte is the number of dimensions) and return the dimensions."""
    (found,) = _read_uint32s(f, path, 1)
    if found != magic:
        raise UserError(f"{path} is not an IDX {kind} file (magic 0x{found:08x}, expected 0x{magic:08x})")
    return _read_uint32s(f, path, magic & 0xFF)


def _read_uint32s(f, path: Path, count: int) -> tuple[int, ...]:
    return tuple(int(v) for v in np.frombuffer(_read_exactly(f, 4 * count, path), dtype=">u4"))


def _read_exactly(f, size: int, path: Path) -> bytes:
    try:
        data = f.read(size)
    except (OSError, EOFError, zlib.error) as e:  # gzip's BadGzipFile is an OSError
        raise UserError(f"cannot read {path}: {e}") from None
    if len(data) != size:
        raise UserError(f"{path} is truncated: expected {size} bytes, found {len(data)}")
    return data


def too_big(what: str, size: int, max_bytes: int, remedy: str = ARRAY_REMEDY) -> UserError:
    return UserError(f"{what} would need {size / 2**30:.3g} GiB, more than the {max_bytes / 2**30:.3g} GiB in-memory "
                     f"limit; {remedy}")


def _require_images(shape: tuple[int, ...], path: Path) -> None:
    if 0 in shape:
        raise UserError(f"{path} holds no images (shape {tuple(shape)})")
