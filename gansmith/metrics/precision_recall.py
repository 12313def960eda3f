"""Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for
Assessing Generative Models"), as in StyleGAN2-ADA's metric.

Each set's manifold is the union of balls around its feature vectors, each ball's radius the distance to
the vector's k-th nearest neighbour in the same set (k = 3 in the paper). Precision = fraction of generated
vectors inside the real manifold (are samples realistic?); recall = fraction of real vectors inside the
generated manifold (is the data's variety covered?).
"""
from __future__ import annotations

import numpy as np

from .distances import k_smallest, within_any_radius

PR_NEIGHBOURS = 3


def knn_sq_radii(feats: np.ndarray, k: int = PR_NEIGHBOURS) -> np.ndarray:
    """Squared distance of each vector to its k-th nearest neighbour in the same set (itself excluded)."""
    if len(feats) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} vectors per set, got {len(feats)}")
    sq_dists, _ = k_smallest(feats, feats, k + 1)  # the nearest is the vector itself, at distance 0
    return sq_dists[:, k]


def manifold_coverage(points: np.ndarray, manifold: np.ndarray, k: int = PR_NEIGHBOURS) -> float:
    """Fraction of `points` inside the k-NN manifold of `manifold`."""
    return float(within_any_radius(points, manifold, knn_sq_radii(manifold, k)).mean())


def precision_recall(real_feats: np.ndarray, fake_feats: np.ndarray, k: int = PR_NEIGHBOURS) -> tuple[float, float]:
    """(precision, recall) of generated features against real features."""
    real = np.asarray(real_feats, np.float32)
    fake = np.asarray(fake_feats, np.float32)
    return manifold_coverage(fake, real, k), manifold_coverage(real, fake, k)
