"""The on-disk cache of decoded data sets: what lets a folder or zip larger than memory stream.

A streamed data set is decoded once into $GANSMITH_CACHE/datasets/NAME-KEY/ (default ~/.cache/gansmith):
`pixels.u8` (raw uint8, C order, N x C x res x res) and `meta.json` (shape, source, skipped files, content hash,
format). Loads memory-map pixels.u8, so only the rows in use take memory, as page cache the kernel can drop
again. KEY covers the data's absolute path, the load options and each file's name, size and modification time
(for a zip: the archive's): an unchanged data set is reused without decoding, a changed one is decoded afresh.
Deleting a folder (or all of datasets/) is always safe; it is decoded again when next needed.

Decoding writes into a temporary folder `.NAME-KEY.tmp-PID@HOST` that is renamed into place only when complete,
so an interrupted decode never leaves a folder that looks valid; later loads remove the leftovers of dead
processes. Processes loading the same data set at once (distributed ranks) take turns through a lock file,
so it is decoded once.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import PIL
import torch

from ..errors import UserError
from ..fileio import atomic_write_json, cache_root
from .imagedata import ImageData, pixels_hash
from .specs import Entry

try:
    import fcntl
except ImportError:  # not POSIX: no lock; simultaneous loads then each decode, and the first to finish is kept
    fcntl = None

FORMAT = 1                  # bump when decoding gives other pixels for the same files (the key includes it)
META, PIXELS = "meta.json", "pixels.u8"
STALE_SECONDS = 24 * 3600   # a temporary folder untouched this long is a leftover, whichever machine wrote it
CHUNK_BYTES = 64 * 2**20
WRITE_BUFFER = 2**20
HOST = socket.gethostname()


class DecodedCache:
    """The cache folder of one data set loaded with given options (it need not exist yet)."""

    def __init__(self, spec: str, options: dict, entries: list[Entry]):
        path = Path(spec).expanduser().resolve()
        self.key = _key(path, options, entries)
        self.root = cache_root() / "datasets"
        self.folder = self.root / f"{_label(path)}-{self.key[:16]}"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this data set's lock: one process decodes it while the others wait, then reuse its work."""
        with _writing(self.root):
            self.root.mkdir(parents=True, exist_ok=True)
            f = open(self.root / f"{self.folder.name}.lock", "ab")
        with f:
            if fcntl is not None:
                fcntl.flock(f, fcntl.LOCK_EX)  # released when the file is closed, also when the process dies
            yield

    def open(self, spec: str) -> ImageData | None:
        """The data set memory-mapped from a complete cache folder, or None (a damaged folder is removed)."""
        if not self.folder.is_dir():
            return None
        try:
            meta = json.loads((self.folder / META).read_text())
            shape = tuple(meta["shape"])
            if meta["format"] != FORMAT or meta["key"] != self.key or \
                    (self.folder / PIXELS).stat().st_size != int(np.prod(shape)):
                raise ValueError("not this data set's cache")
            # Copy-on-write: writable for torch.from_numpy, yet the pages stay file-backed and reclaimable.
            x = np.memmap(self.folder / PIXELS, np.uint8, mode="c", shape=shape)
            return ImageData(torch.from_numpy(x), spec, [tuple(s) for s in meta["skipped"]],
                             cache_path=self.folder, known_hash=meta["content_hash"])
        except (OSError, ValueError, KeyError, TypeError):
            shutil.rmtree(self.folder, ignore_errors=True)
            return None

    @contextlib.contextmanager
    def decoding(self, needed_bytes: int) -> Iterator[Draft]:
        """A Draft in a fresh temporary folder, put in place when the block ends normally, removed otherwise.

        Call inside `lock()`. Refuses to start when the disk has less than `needed_bytes` free.
        """
        self._remove_stale()
        self._check_space(needed_bytes)
        tmp = self.root / f".{self.folder.name}.tmp-{os.getpid()}@{HOST}"
        shutil.rmtree(tmp, ignore_errors=True)  # left by a dead process that had our pid (containers reuse pids)
        with _writing(tmp):
            tmp.mkdir()
        try:
            with Draft(tmp, self.key) as draft:
                yield draft
            self._publish(tmp)
        except BaseException:  # KeyboardInterrupt too: never leave a half-written folder behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _publish(self, tmp: Path) -> None:
        with _writing(self.folder):
            try:
                os.rename(tmp, self.folder)
            except OSError:
                if not self.folder.is_dir():
                    raise
                shutil.rmtree(tmp)  # another process finished first (no lock on this system): keep its copy

    def _check_space(self, needed: int) -> None:
        free = shutil.disk_usage(self.root).free
        if needed > free:
            raise UserError(f"not enough disk space to stream this data set: decoding it needs {needed / 2**30:.3g} "
                            f"GiB in {self.root}, which has {free / 2**30:.3g} GiB free (free some space, or set "
                            f"GANSMITH_CACHE to a folder on a larger disk)")

    def _remove_stale(self) -> None:
        """Remove temporary folders of decodes that died (on this machine) or stopped a day ago (on any)."""
        for tmp in self.root.glob(".*.tmp-*"):
            pid, _, host = tmp.name.rpartition(".tmp-")[2].partition("@")
            if (host == HOST and not _alive(pid)) or _idle_seconds(tmp) > STALE_SECONDS:
                shutil.rmtree(tmp, ignore_errors=True)


class Draft:
    """A data set being decoded into a temporary folder: `write` rows in order, then `complete`."""

    def __init__(self, folder: Path, key: str):
        self.folder, self.key = folder, key
        with _writing(folder):
            self._file = open(folder / PIXELS, "wb", buffering=WRITE_BUFFER)

    def __enter__(self) -> Draft:
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()

    def write(self, rows: np.ndarray) -> None:
        """Append uint8 rows (C x res x res each, or one such image) to pixels.u8."""
        with _writing(self.folder):
            self._file.write(np.ascontiguousarray(rows).data)

    def complete(self, shape: tuple[int, int, int, int], channels: int, source: str,
                 skipped: list[tuple[str, str]]) -> None:
        """Finish pixels.u8, which holds `shape` (N x C x res x res; with channels < C only the first channel
        is kept: the images are gray), and write meta.json."""
        path = self.folder / PIXELS
        with _writing(self.folder):
            self._file.close()
            if channels < shape[1]:
                shape = _keep_first_channel(path, shape)
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
        content_hash = pixels_hash(np.memmap(path, np.uint8, mode="r", shape=shape))
        atomic_write_json(self.folder / META, {
            "format": FORMAT, "key": self.key, "source": source, "shape": list(shape),
            "skipped": [list(s) for s in skipped], "content_hash": content_hash})


def _keep_first_channel(path: Path, shape: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Rewrite N x C x H x W pixels as N x 1 x H x W: into a new file, a chunk of rows at a time, then replace."""
    gray = path.with_name(path.name + ".gray")
    _write_first_channel(np.memmap(path, np.uint8, mode="r", shape=shape), gray)
    os.replace(gray, path)
    return (shape[0], 1, *shape[2:])


def _write_first_channel(pixels: np.ndarray, out: Path) -> None:
    rows = max(1, CHUNK_BYTES // pixels[0].nbytes)
    with open(out, "wb") as f:
        for start in range(0, len(pixels), rows):
            f.write(np.ascontiguousarray(pixels[start:start + rows, :1]).data)


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn an OSError (disk full, no permission, ...) into one line naming the cache and how to move it."""
    try:
        yield
    except OSError as e:
        raise UserError(f"cannot write the decoded data set to {path}: {e.strerror or e} (set GANSMITH_CACHE "
                        f"to use another folder)") from None


def _key(path: Path, options: dict, entries: list[Entry]) -> str:
    digest = hashlib.sha256(json.dumps({"format": FORMAT, "pillow": PIL.__version__, "path": str(path), **options},
                                       sort_keys=True).encode())
    if path.is_file():  # a zip: its members change only with the archive
        st = path.stat()
        digest.update(f"{st.st_size} {st.st_mtime_ns}\n".encode())
    for entry in entries:
        digest.update(f"{entry.name}\0{entry.stamp}\n".encode())
    return digest.hexdigest()


def _label(path: Path) -> str:
    """A readable start for the folder name: the data's file or folder name, made safe."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem).lstrip(".")[:40] or "data"


def _alive(pid: str) -> bool:
    """Whether process `pid` of this machine still runs (assumed off POSIX, where os.kill would end it)."""
    if os.name != "posix":
        return True
    try:
        os.kill(int(pid), 0)
    except (ValueError, OverflowError, ProcessLookupError):
        return False
    except PermissionError:  # it exists, run by another user
        return True
    return True


def _idle_seconds(folder: Path) -> float:
    try:
        return time.time() - max(p.stat().st_mtime for p in (folder, *folder.iterdir()))
    except OSError:  # removed meanwhile
        return 0.0
