"""Atomic file writes (write to a temporary file in the same folder, fsync, then rename), and the cache root.

A reader (or a crash) sees either the old file or the new one, never half of one.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

from .errors import UserError

UMASK = os.umask(0)
os.umask(UMASK)


def cache_root() -> Path:
    """$GANSMITH_CACHE (default ~/.cache/gansmith): decoded data sets in datasets/, real-data features in features/."""
    return Path(os.environ.get("GANSMITH_CACHE") or Path.home() / ".cache" / "gansmith").expanduser()


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    if path.exists() and not path.is_file():  # renaming over a folder fails; over a device or pipe it replaces it
        raise UserError(f"cannot write {path}: it is {'a folder' if path.is_dir() else 'not a regular file'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes the file private; give it the usual permissions
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_save_image(path: str | os.PathLike, image) -> None:
    """Save a PIL image atomically; the format follows the file extension."""
    buf = io.BytesIO()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".gif": "GIF", ".bmp": "BMP"}.get(
        Path(path).suffix.lower(), "PNG")
    image.save(buf, format=fmt)
    atomic_write_bytes(path, buf.getvalue())
