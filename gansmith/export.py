"""Export a run's generator alone, as TorchScript or ONNX, for use outside gansmith.

The exported model maps latents z (float32 N x z_dim, any N) to images (float32 N x C x H x W in [-1, 1]).
Every export is checked before it is kept: the file is loaded back (by torch.jit or onnxruntime) and must
reproduce the PyTorch generator's output on a test latent batch. The file carries `usage` (below): how a seed
becomes z and how the output becomes pixels, so `gansmith sample` can be reproduced without gansmith (ONNX:
metadata_props; TorchScript: the extra file gansmith.json).
"""
from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .fileio import atomic_write_bytes
from .generate import latents, load_generator

FORMATS = {"torchscript": (".pt", ".pts", ".ts"), "onnx": (".onnx",)}
TOLERANCE = {"torchscript": 1e-5, "onnx": 1e-4}
TEST_SEED, TEST_BATCH = 12345, 3
ONNX_PACKAGES = "pip install 'gansmith[export]' (onnx, onnxscript, onnxruntime)"


def format_for(path: str | Path) -> str:
    """The export format a file name asks for: .onnx -> onnx, .pt/.pts/.ts -> torchscript."""
    suffix = Path(path).suffix.lower()
    for fmt, suffixes in FORMATS.items():
        if suffix in suffixes:
            return fmt
    raise UserError(f"cannot tell the export format from {Path(path).name!r}: pass --format onnx or torchscript")


def export_generator(run: str | Path, fmt: str, path: str | Path, which: str = "latest", ema: bool = True) -> dict:
    """Write the generator of `run` to `path` in format `fmt`; returns a summary with `max_abs_diff`, the
    largest difference between the exported model's and PyTorch's output on a test latent batch."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose {' or '.join(FORMATS)}")
    G, cfg = load_generator(run, which=which, ema=ema)
    z = latents(TEST_BATCH, G.z_dim, TEST_SEED)
    with torch.no_grad():
        expected = G(z).numpy()
    meta = usage(G.z_dim, cfg.channels, cfg.res)
    data, actual = (export_torchscript if fmt == "torchscript" else export_onnx)(G, z, meta)
    diff = float(np.abs(actual - expected).max())
    if not diff <= TOLERANCE[fmt]:
        raise UserError(f"the {fmt} export does not reproduce the generator (max difference {diff:.3g} > "
                        f"{TOLERANCE[fmt]:g}); nothing was written")
    atomic_write_bytes(path, data)
    return {"path": str(path), "format": fmt, "max_abs_diff": diff, "z_dim": G.z_dim,
            "output_shape": [cfg.channels, cfg.res, cfg.res], "usage": meta}


def usage(z_dim: int, channels: int, res: int) -> dict[str, str]:
    """What a user needs besides the network to reproduce `gansmith sample`, stored in the exported file."""
    return {
        "gansmith.z_dim": str(z_dim),
        "gansmith.input": f"z: float32 N x {z_dim}, standard normal",
        "gansmith.seed": f"gansmith's --seed S is z = torch.randn(N, {z_dim}, generator=torch.Generator()"
                         ".manual_seed(S)) (PyTorch's CPU generator; other random generators give other images)",
        "gansmith.output": f"images: float32 N x {channels} x {res} x {res} (channels first; "
                           f"{'RGB' if channels == 3 else 'grayscale'}) in [-1, 1]",
        "gansmith.pixels": "uint8 pixel = round((clamp(x, -1, 1) + 1) * 127.5); transpose to N x H x W x C for "
                           "image files",
    }


def export_torchscript(G, z: torch.Tensor, meta: dict[str, str]) -> tuple[bytes, np.ndarray]:
    """The traced generator as bytes (with `meta` as the extra file gansmith.json), and the output of those bytes
    loaded back, on z."""
    with torch.no_grad():
        traced = torch.jit.trace(G, z[:1])
    buf = io.BytesIO()
    torch.jit.save(traced, buf, _extra_files={"gansmith.json": json.dumps(meta, indent=1)})
    reloaded = torch.jit.load(io.BytesIO(buf.getvalue()))
    with torch.no_grad():
        return buf.getvalue(), reloaded(z).numpy()


def export_onnx(G, z: torch.Tensor, meta: dict[str, str]) -> tuple[bytes, np.ndarray]:
    """The generator as ONNX bytes (batch size dynamic, `meta` in metadata_props), and onnxruntime's output of
    those bytes on z."""
    try:
        import onnx  # (torch's exporter needs onnx and onnxscript)
        import onnxscript  # noqa: F401
        import onnxruntime
    except ImportError as e:
        raise UserError(f"ONNX export needs {e.name}: {ONNX_PACKAGES}") from None
    with tempfile.TemporaryDirectory() as tmp, quiet_exporter():
        out = os.path.join(tmp, "G.onnx")
        torch.onnx.export(G, (z,), out, input_names=["z"], output_names=["images"],
                          dynamic_shapes={"z": {0: torch.export.Dim("batch")}}, dynamo=True, external_data=False,
                          verbose=False)
        model = onnx.load_from_string(Path(out).read_bytes())
    onnx.helper.set_model_props(model, meta)
    data = model.SerializeToString()
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return data, session.run(None, {"z": z.numpy()})[0]


@contextmanager
def quiet_exporter():
    """Silence the exporter's chatter about itself (missing torchvision ops, deprecations inside torch)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)
