"""On-disk cache of real-data Inception features, so a data set is pushed through the network once.

Files live in $GANSMITH_CACHE/features (default ~/.cache/gansmith/features), one .npy per (data content hash,
resolution, channels, image count, feature-extractor version); writes are atomic, reads never unpickle. An
unreadable or mismatched file counts as a miss and is overwritten; an unwritable cache only warns.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import UserError
from ..fileio import atomic_write_bytes, cache_root
from .inception import FEATURE_DIM

# Bump when the network, the preprocessing or the subset choice changes: old files then stop matching.
FEATURE_VERSION = "incv3-2015-12-05-tfbilinear-v1"


def cache_dir() -> Path:
    return cache_root() / "features"


def cache_path(content_hash: str, res: int, channels: int, n: int) -> Path:
    return cache_dir() / f"{content_hash[:32]}-{res}px-{channels}c-n{n}-{FEATURE_VERSION}.npy"


def _load(path: Path, n: int) -> np.ndarray | None:
    try:
        feats = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if feats.shape != (n, FEATURE_DIM) or feats.dtype != np.float32:
        return None
    return feats


def _save(path: Path, feats: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, feats, allow_pickle=False)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except UserError as e:
        warnings.warn(f"feature cache not written ({e}); the features will be recomputed next time", stacklevel=3)


def cached_features(content_hash: str, res: int, channels: int, n: int,
                    compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The cached float32 n x 2048 features for this key, or compute(), stored for next time."""
    path = cache_path(content_hash, res, channels, n)
    feats = _load(path, n)
    if feats is None:
        feats = np.asarray(compute(), dtype=np.float32)
        _save(path, feats)
    return feats
