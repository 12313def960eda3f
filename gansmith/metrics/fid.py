"""Fréchet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule ...").

FID = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussians fitted to two feature sets.

tr((S_a S_b)^(1/2)) is computed from eigenvalues instead of `scipy.linalg.sqrtm`: S_a S_b is similar to the
symmetric PSD matrix M = S_a^(1/2) S_b S_a^(1/2), so tr((S_a S_b)^(1/2)) = sum(sqrt(eig(M))). Two symmetric
eigendecompositions are faster than sqrtm's complex Schur form and stay real when the covariances are
singular. With fewer images than feature dimensions (n < 2048, the usual case on a CPU) the same value
comes from an n_a x n_b matrix instead (`_fid_few_samples`), which is much faster still.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..fileio import atomic_write_bytes

FID_MIN_RELIABLE_N = 2000


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of N x D features, in float64."""
    feats = np.asarray(feats, dtype=np.float64)
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(s)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def trace_sqrt_product(s_a: np.ndarray, s_b: np.ndarray) -> float:
    """tr((S_a S_b)^(1/2)) for symmetric PSD S_a, S_b."""
    root_a = _psd_sqrt(s_a)
    m = root_a @ s_b @ root_a
    eigvals = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(eigvals, 0, None)).sum())


def fid_from_stats(mu_a: np.ndarray, s_a: np.ndarray, mu_b: np.ndarray, s_b: np.ndarray) -> float:
    """FID between N(mu_a, S_a) and N(mu_b, S_b)."""
    mean_term = float(np.square(np.asarray(mu_a, np.float64) - mu_b).sum())
    return mean_term + float(np.trace(s_a) + np.trace(s_b)) - 2 * trace_sqrt_product(s_a, s_b)


def fid_from_features(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """FID between two N x D feature sets; warns when either set is too small for FID to be trusted."""
    n = min(len(feats_a), len(feats_b))
    if n < 2:
        raise ValueError(f"FID needs at least 2 feature vectors per set, got {len(feats_a)} and {len(feats_b)}")
    if n < FID_MIN_RELIABLE_N:
        warnings.warn(f"FID on {n} images is biased upward (it shrinks as n grows; Binkowski et al. 2018); "
                      f"compare FIDs only at equal n, or trust KID, which is unbiased", stacklevel=2)
    feats_a, feats_b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    if n < feats_a.shape[1]:
        return _fid_few_samples(feats_a, feats_b)
    return fid_from_stats(*feature_stats(feats_a), *feature_stats(feats_b))


def _fid_few_samples(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """FID through the samples: with A, B the centred features, S_a = A^T A / (n_a - 1), S_b = B^T B / (n_b - 1),
    and the nonzero eigenvalues of A^T A B^T B are those of (A B^T)(A B^T)^T, the squared singular values of
    A B^T. So tr((S_a S_b)^(1/2)) = (sum of singular values of A B^T) / sqrt((n_a - 1)(n_b - 1))."""
    mu_a, mu_b = feats_a.mean(axis=0), feats_b.mean(axis=0)
    a, b = feats_a - mu_a, feats_b - mu_b
    dof_a, dof_b = len(a) - 1, len(b) - 1
    trace_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(dof_a * dof_b)
    traces = np.square(a).sum() / dof_a + np.square(b).sum() / dof_b
    return float(np.square(mu_a - mu_b).sum() + traces - 2 * trace_sqrt)


def is_stats_file(path: str | Path) -> bool:
    """Whether `path` is an .npz of precomputed statistics (arrays mu and sigma, as pytorch-fid writes them)
    rather than images (an .npz with an array x)."""
    if Path(path).suffix.lower() != ".npz" or not Path(path).is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as f:
            return {"mu", "sigma"} <= set(f.files)
    except (OSError, ValueError):
        return False


def load_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(mu, sigma, n) from a statistics .npz (n is None when the file does not say, as pytorch-fid's files)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            mu, sigma = np.asarray(f["mu"], np.float64), np.asarray(f["sigma"], np.float64)
            n = int(f["n"]) if "n" in f.files else None
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"cannot read FID statistics from {path} ({type(e).__name__}: {e})") from None
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise UserError(f"{path}: mu must be a vector and sigma a square matrix of its size, not {mu.shape} and "
                        f"{sigma.shape}")
    return mu, sigma, n


def save_stats(path: str | Path, feats: np.ndarray) -> None:
    """The mean and covariance of N x D features as an .npz with mu, sigma (pytorch-fid's format) and n."""
    mu, sigma = feature_stats(feats)
    buf = io.BytesIO()
    np.savez(buf, mu=mu, sigma=sigma, n=np.int64(len(feats)))
    atomic_write_bytes(path, buf.getvalue())
