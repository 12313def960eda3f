"""Checkpoints: atomic, self-contained, weights-only, checksummed.

A checkpoint is a dict of tensors and plain values, so `torch.load(weights_only=True)` can read it and
never runs code from the file. It carries a sha256 over all its contents (in a canonical order), so a
file damaged after it was written is detected, not loaded. Files are written to a temporary name and
renamed, so a crash mid-write leaves the previous checkpoint as it was.

The checksum proves integrity, not trust: `load_usable` also checks that the config a checkpoint carries passes
the CLI's checks, bounds the memory of its networks before building them, and compares its weights' shapes with
those the config builds.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch

from ..errors import UserError
from ..fileio import atomic_write_bytes
from ..models import build_discriminator, build_generator
from ..system import available_memory
from .config import check_saved, shape_differences

FORMAT = "gansmith-checkpoint"
VERSION = 1
STEP_FILE = re.compile(r"^step-(\d{8})\.pt$")


class CheckpointError(UserError):
    """A checkpoint that cannot be used: corrupt, truncated, foreign or unsafe."""


def step_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"step-{step:08d}.pt"


def save_checkpoint(path: str | Path, payload: dict) -> None:
    payload = {**payload, "format": FORMAT, "version": VERSION}
    payload["checksum"] = tree_checksum(payload)
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> dict:
    """Load and verify one checkpoint file; raise CheckpointError (one line) if it is not usable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not is_zip(path):  # torch.save writes a zip archive; anything else was never a checkpoint
        raise CheckpointError(f"{path} is not a gansmith checkpoint (not a PyTorch file)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"refusing {path}: it holds Python objects other than weights (it could run code when loaded); "
            "only gansmith checkpoints are accepted") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a gansmith checkpoint")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {ckpt.get('version')}; "
                              f"this gansmith reads version {VERSION}")
    stored = ckpt.pop("checksum", None)
    if stored != tree_checksum(ckpt):
        raise CheckpointError(f"checkpoint {path} fails its checksum (damaged after writing)")
    return ckpt


def is_zip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def load_usable(path: str | Path, like: dict | None = None) -> dict:
    """A checkpoint that loads, verifies and holds a model gansmith can build: its config passes the checks of the
    CLI's options, its networks fit in memory and its weights have the shapes that config builds; given `like` (its
    run's saved config), it is of the run's shape too. Raises CheckpointError naming what is wrong."""
    ckpt = load_checkpoint(path)
    try:
        cfg = check_saved(ckpt.get("config"))
        differing = shape_differences(like, ckpt["config"]) if like is not None else []
    except UserError as e:
        raise CheckpointError(f"checkpoint {path} is not usable: {e}") from None
    if differing:
        raise CheckpointError(f"checkpoint {path} holds another model than its run ({'; '.join(differing)})")
    check_weights(path, ckpt, cfg)
    return ckpt


def check_weights(path: Path, ckpt: dict, cfg) -> None:
    """The weights in `ckpt` have the shapes `cfg` builds, and building them fits in memory (checked first)."""
    needed, available = network_bytes(cfg), available_memory()
    if available is not None and needed > available:
        raise CheckpointError(f"checkpoint {path} is not usable: its networks need {needed / 2**30:.1f} GiB of "
                              f"memory, {available / 2**30:.1f} GiB is available")
    G = build_generator(cfg)
    for key, net in (("G", G), ("D", build_discriminator(cfg)), ("G_ema", G)):
        weights = ckpt.get(key)
        if key == "G_ema" and weights is None:
            continue
        if not isinstance(weights, dict):
            raise CheckpointError(f"checkpoint {path} is not usable: it has no {key} weights")
        if shapes(weights) != {k: tuple(v.shape) for k, v in net.state_dict().items()}:
            raise CheckpointError(f"checkpoint {path} is not usable: its {key} weights do not fit its config")


SMALL_WIDTH = 8


def network_bytes(cfg) -> int:
    """An upper bound on the float32 bytes of G and D, from networks built SMALL_WIDTH channels wide: a layer's
    parameters grow at most with the square of the width, so scaling by (width / SMALL_WIDTH)^2 never
    underestimates, and nothing large is allocated to find out."""
    small = cfg.replace(width=min(cfg.width, SMALL_WIDTH), d_width=min(cfg.d_width, SMALL_WIDTH))
    count = lambda net, w, w_small: sum(p.numel() for p in net.parameters()) * (w / w_small) ** 2  # noqa: E731
    return int(4 * (count(build_generator(small), cfg.width, small.width)
                    + count(build_discriminator(small), cfg.d_width, small.d_width)))


def shapes(weights: dict) -> dict | None:
    if not all(isinstance(v, torch.Tensor) for v in weights.values()):
        return None
    return {k: tuple(v.shape) for k, v in weights.items()}


def list_step_checkpoints(folder: str | Path) -> list[Path]:
    """step-*.pt files in a folder, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if STEP_FILE.match(p.name))


def load_latest_valid(folder: str | Path, like: dict | None = None) -> tuple[Path, dict] | None:
    """The newest usable checkpoint (`load_usable`); damaged, unusable or foreign newer ones are skipped with a
    warning."""
    for path in reversed(list_step_checkpoints(folder)):
        try:
            return path, load_usable(path, like)
        except CheckpointError as e:
            warnings.warn(f"{e}; falling back to the previous checkpoint", stacklevel=2)
    return None


def remove_stale_temporaries(folder: str | Path) -> int:
    """Delete temporary files left by a write that was killed (they were never renamed into place)."""
    folder, removed = Path(folder), 0
    for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def prune_checkpoints(folder: str | Path, keep: int) -> None:
    """Delete all but the newest `keep` step checkpoints."""
    for path in list_step_checkpoints(folder)[:-keep]:
        path.unlink(missing_ok=True)


def tree_checksum(obj) -> str:
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h, obj) -> None:
    """Hash a nested structure of dicts, lists, tensors and scalars in a canonical order."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=repr):
            _feed(h, k)
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[" if isinstance(obj, list) else b"(")
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
