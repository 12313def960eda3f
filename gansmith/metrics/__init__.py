"""Evaluation metrics on Inception-v3 features, following the TF-era protocol StyleGAN's numbers use.

    feats = compute_features(images_uint8_nhwc)            # N x 2048 float32
    fid_from_features(a, b); kid_from_features(a, b)       # FID; (KID mean, std)
    precision_recall(real_feats, fake_feats, k=3)          # (precision, recall)
    evaluate(real_imagedata, fake_images, metrics=("fid", "kid", "pr", "nn"))  # dict of plain numbers

Modules: `inception` (the network), `preprocess` (uint8 -> network input), `fid`, `kid`, `precision_recall`,
`nearest` (memorization), `cache` (real-data features on disk), `distances` (blocked distance matrices).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from tqdm import tqdm

from ..errors import UserError
from ..fileio import atomic_save_image
from ..images import to_pil
from .cache import cache_path, cached_features
from .fid import FID_MIN_RELIABLE_N, fid_from_features, fid_from_stats, feature_stats, is_stats_file, load_stats, save_stats
from .inception import FEATURE_DIM, load_network
from .kid import kid_from_features, kid_text
from .nearest import CLOSE_RATIO, nearest_gallery, nearest_neighbours
from .precision_recall import PR_NEIGHBOURS, precision_recall
from .preprocess import to_network_input

__all__ = ["METRICS", "FID_MIN_RELIABLE_N", "compute_features", "real_features", "subset_indices", "evaluate",
           "fid_from_features", "fid_from_stats", "feature_stats", "kid_from_features", "precision_recall",
           "parse_metrics", "is_stats_file", "load_stats", "save_stats", "seconds_per_image", "features_cached", "METRIC_NAMES", "described"]

METRICS = ("fid", "kid", "pr", "nn")
# What `evaluate` returns, for people: key -> (name, one line on what it means).
METRIC_NAMES = {
    "fid": ("FID", "Fréchet Inception Distance to the real images; lower is better; biased upward at small n"),
    "kid": ("KID", "Kernel Inception Distance; lower is better; unbiased at any n"),
    "precision": ("precision", "share of generated images that look like some real image; low: unrealistic"),
    "recall": ("recall", "share of real images that some generated image resembles; low: mode collapse"),
    "nn_feature_ratio_median": ("copy distance, features",
                                "median distance of a sample to its nearest training image, over the training "
                                "images' own spacing (Inception features); ~1: new images, near 0: copies"),
    "nn_feature_close_frac": ("near-copies, features",
                              f"share of samples nearer than {CLOSE_RATIO:g} of that spacing to a training image"),
    "nn_pixel_ratio_median": ("copy distance, pixels", "the same median ratio in pixel space; near 0: literal copies"),
    "nn_pixel_close_frac": ("near-copies, pixels", f"share of samples nearer than {CLOSE_RATIO:g} of the pixel spacing"),
    "n_real": ("real images", "how many real images were compared"),
    "n_fake": ("generated images", "how many generated images were compared"),
}
FEATURE_BATCH = 8   # Inception images per forward pass: the fastest measured (docs/defaults.md)
SUBSET_SEED = 0


def compute_features(images: np.ndarray, batch: int = FEATURE_BATCH, progress: bool = False,
                     device: str | torch.device = "cpu", label: str = "images") -> np.ndarray:
    """uint8 N x H x W x C images (C = 1 or 3, any size) -> float32 N x 2048 Inception pool3 features. `label`
    names the set on the progress bar ("real", "generated")."""
    net = load_network().to(device)
    feats = np.empty((len(images), FEATURE_DIM), np.float32)
    with torch.inference_mode(), tqdm(total=len(images), unit="img", desc=f"Inception features of {label}",
                                      disable=not progress, leave=False) as bar:
        for start in range(0, len(images), batch):
            chunk = images[start:start + batch]
            feats[start:start + len(chunk)] = net(to_network_input(chunk).to(device)).cpu().numpy()
            bar.update(len(chunk))
    return feats


def seconds_per_image(batch: int = FEATURE_BATCH, device: str | torch.device = "cpu") -> float:
    """Inception's time per image here and now, from one timed batch after a warm-up one (for estimates)."""
    images = np.zeros((batch, 32, 32, 3), np.uint8)
    compute_features(images, batch, device=device)
    start = time.perf_counter()
    compute_features(images, batch, device=device)
    return (time.perf_counter() - start) / batch


def features_cached(real, n: int | None = None) -> bool:
    """Whether `real_features(real, n)` will come from the disk cache."""
    n = real.n if n is None else min(n, real.n)
    return cache_path(real.content_hash(), real.res, real.channels, n).is_file()


def subset_indices(total: int, n: int, seed: int = SUBSET_SEED) -> np.ndarray:
    """A fixed random choice of n of `total` images (all of them when n >= total), in ascending order."""
    if n >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, n, replace=False))


def real_features(real, n: int | None = None, batch: int = FEATURE_BATCH, progress: bool = False,
                  cache: bool = True, device: str | torch.device = "cpu", label: str = "real images") -> np.ndarray:
    """Features of a fixed subset of n images of an ImageData (all by default), cached on disk by content."""
    n = real.n if n is None else min(n, real.n)

    def compute():
        return compute_features(real.images(subset_indices(real.n, n)), batch=batch, progress=progress,
                                device=device, label=f"{label} ({n:,})")

    if not cache:
        return compute()
    return cached_features(real.content_hash(), real.res, real.channels, n, compute)


def described(results: dict) -> list[tuple[str, str, str]]:
    """`evaluate`'s results for people: (name, value, what it means) rows in METRIC_NAMES order, KID with its
    spread or why it has none."""
    order = [k for k in METRIC_NAMES if k in results] + [k for k in results if k not in METRIC_NAMES]
    rows = []
    for key in order:
        value = results[key]
        if key == "kid_std":
            continue
        name, meaning = METRIC_NAMES.get(key, (key, ""))
        if key == "kid" and isinstance(value, (int, float)):
            text = kid_text(value, results.get("kid_std"), 5)
        else:
            text = f"{value:.4f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)
        rows.append((name, text, meaning))
    return rows


def parse_metrics(metrics: str | Iterable[str]) -> tuple[str, ...]:
    """'fid,kid' or ("fid", "kid") -> validated tuple; unknown names are a UserError."""
    names = tuple(m.strip().lower() for m in (metrics.split(",") if isinstance(metrics, str) else metrics))
    names = tuple(m for m in names if m)
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise UserError(f"unknown metric {', '.join(unknown) or '(none given)'}; choose from {','.join(METRICS)}")
    return names


def evaluate(real, fake_images: np.ndarray, metrics: str | Iterable[str] = ("fid", "kid", "pr"),
             n: int | None = None, batch: int = FEATURE_BATCH, progress: bool = False, cache: bool = True,
             nearest_png: str | Path | None = None, device: str | torch.device = "cpu") -> dict:
    """Compare generated uint8 N x H x W x C images with a real ImageData. Uses up to n images of each
    (default: all). Returns plain numbers: fid, kid, kid_std, precision, recall, nn_* (see `nearest`),
    n_real, n_fake. With "nn" and `nearest_png`, also saves the nearest-neighbour gallery there."""
    metrics = parse_metrics(metrics)
    n_real = real.n if n is None else min(n, real.n)
    fake_images = fake_images if n is None else fake_images[:n]
    _check_counts(metrics, n_real, len(fake_images))
    real_feats = real_features(real, n_real, batch=batch, progress=progress, cache=cache, device=device)
    fake_feats = compute_features(fake_images, batch=batch, progress=progress, device=device,
                                  label=f"generated images ({len(fake_images):,})")
    result = {"n_real": n_real, "n_fake": len(fake_images)}
    if "fid" in metrics:
        result["fid"] = fid_from_features(real_feats, fake_feats)
    if "kid" in metrics:
        result["kid"], result["kid_std"] = kid_from_features(real_feats, fake_feats)
    if "pr" in metrics:
        result["precision"], result["recall"] = precision_recall(real_feats, fake_feats)
    if "nn" in metrics:
        real_images = real.images(subset_indices(real.n, n_real))
        result.update(_memorization(real_images, real_feats, fake_images, fake_feats, nearest_png))
    return result


def _check_counts(metrics: tuple[str, ...], n_real: int, n_fake: int) -> None:
    fewest = min(n_real, n_fake)
    if fewest < 2:
        raise UserError(f"metrics need at least 2 images per side, got {n_real} real and {n_fake} generated")
    if "pr" in metrics and fewest <= PR_NEIGHBOURS:
        raise UserError(f"precision/recall needs more than {PR_NEIGHBOURS} images per side, got {n_real} real "
                        f"and {n_fake} generated")


def _memorization(real_images, real_feats, fake_images, fake_feats, nearest_png) -> dict:
    by_features = nearest_neighbours(fake_feats, real_feats)
    by_pixels = nearest_neighbours(fake_images, real_images)
    if nearest_png is not None:
        grid = nearest_gallery(fake_images, real_images, by_features, by_pixels)
        atomic_save_image(nearest_png, to_pil(grid))
    return {**by_features.summary("nn_feature"), **by_pixels.summary("nn_pixel")}
