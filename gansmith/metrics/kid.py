"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs"), as in StyleGAN2-ADA's metric.

KID is the unbiased estimate of the squared MMD with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3,
averaged over random subsets of m = min(subset_size, n_a, n_b) vectors from each set:

    MMD^2_u = sum_{i != j} [k(a_i, a_j) + k(b_i, b_j)] / (m (m - 1)) - 2 sum_{i, j} k(a_i, b_j) / m^2

Leaving out the diagonal makes each subset's estimate unbiased, so KID is ~0 for equal distributions at any n
(it can be slightly negative). The spread over subsets is reported as the standard deviation; when both sets
have at most `subset_size` vectors every subset is the whole set, so it is computed once and there is no spread
(the std is None, not 0: one estimate is not exact).
"""
from __future__ import annotations

import numpy as np
import torch

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def _cubic_kernel_sums(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, float]:
    """(sum of k(x_i, x_j) over i != j, same for y, sum of k(x_i, y_j) over all pairs), float64 sums."""
    d = x.shape[1]

    def kernel(a, b):
        return (a @ b.T).double().div_(d).add_(1).pow_(3)

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    return ((kxx.sum() - kxx.diagonal().sum()).item(), (kyy.sum() - kyy.diagonal().sum()).item(),
            kxy.sum().item())


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased squared MMD with the cubic polynomial kernel between two m x d sets of equal size m >= 2."""
    m = x.shape[0]
    sxx, syy, sxy = _cubic_kernel_sums(x, y)
    return (sxx + syy) / (m * (m - 1)) - 2 * sxy / (m * m)


def kid_from_features(feats_a: np.ndarray, feats_b: np.ndarray, subsets: int = KID_SUBSETS,
                      subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> tuple[float, float | None]:
    """KID between two N x D feature sets: (mean, std) of the unbiased MMD^2 over random subsets; std is None
    when both sets fit in one subset (a single estimate has no spread to report)."""
    m = min(subset_size, len(feats_a), len(feats_b))
    if m < 2:
        raise ValueError(f"KID needs at least 2 feature vectors per set, got {len(feats_a)} and {len(feats_b)}")
    a = torch.as_tensor(np.asarray(feats_a, dtype=np.float32))
    b = torch.as_tensor(np.asarray(feats_b, dtype=np.float32))
    if m == len(a) == len(b):
        return mmd2_unbiased(a, b), None
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)])
              for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


def kid_text(kid: float, kid_std: float | None, digits: int = 6) -> str:
    """'0.012345 ± 0.000678', or the mean and why there is no spread."""
    if kid_std is None:
        return f"{kid:.{digits}f} (no spread available: one estimate from all images, fewer than a subset)"
    return f"{kid:.{digits}f} ± {kid_std:.{digits}f}"
