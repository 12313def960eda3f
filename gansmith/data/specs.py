"""Resolving a DATA spec (folder, .zip, .npz, IDX, `builtin:NAME`) into images to decode or an array.

Folders and zips become a list of `Entry` (a name and a way to read its bytes, lazily, so only one
file per worker is in memory at a time); .npz and IDX become one uint8 array. Zip members are read
in memory and never extracted; unsafe names and suspicious sizes are refused before anything is read.
"""
from __future__ import annotations

import contextlib
import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import UserError
from . import arrays
from .decode import Undecodable

BUILTINS = {"fashion-mnist": "t10k-images-idx3-ubyte.gz"}  # packaged next to this file
EXPECTED = "expected a folder of images, a .zip, an .npz, an IDX .gz (or images.gz,labels.gz) or builtin:fashion-mnist"
IDX_SUFFIXES = (".gz", ".idx", "ubyte")

MAX_FILE_BYTES = 256 * 2**20        # one image file (or zip member), uncompressed
MAX_ARCHIVE_BYTES = 32 * 2**30      # all members of a zip together, uncompressed
# For members above RATIO_CHECK_BYTES. PNG/JPEG/WebP barely compress and even raw BMP/TIFF photos stay far
# below this, while deflate bombs sit near its ~1000:1 maximum.
MAX_COMPRESSION_RATIO = 200
RATIO_CHECK_BYTES = 2**20


@dataclass
class Entry:
    """One file to decode: `name` is shown to the user, `read()` returns its bytes or raises Undecodable."""
    name: str
    read: Callable[[], bytes]
    stamp: str = ""  # a folder's file: "size mtime", so that a changed file changes the decoded cache's key


@dataclass
class Source:
    entries: list[Entry] = field(default_factory=list)          # encoded images, in a stable order
    array: np.ndarray | None = None                               # or decoded images, uint8 N x H x W x C
    refused: list[tuple[str, str]] = field(default_factory=list)  # (name, reason) refused before decoding

    @property
    def n_files(self) -> int:
        return len(self.entries) + len(self.refused)


@contextlib.contextmanager
def open_spec(spec: str, max_bytes: int) -> Iterator[Source]:
    """Resolve `spec`; the Source is valid inside the `with` block (a zip stays open until then)."""
    if spec.startswith("builtin:"):
        yield Source(array=arrays.read_idx_images(_builtin_path(spec), max_bytes))
        return
    path = Path(spec).expanduser()
    if not path.exists() and "," in spec:
        yield Source(array=_read_idx_pair(spec, max_bytes))
    elif not path.exists():
        raise UserError(f"{spec}: no such file or folder ({EXPECTED})")
    elif path.is_dir():
        yield _folder_source(path)
    elif not path.is_file():
        raise UserError(f"{spec}: not a regular file ({EXPECTED})")  # reading a FIFO or device could hang
    elif path.suffix.lower() == ".zip":
        with _open_zip(path) as zf:
            yield _zip_source(zf, path)
    elif path.suffix.lower() == ".npz":
        yield Source(array=arrays.read_npz(path, max_bytes))
    elif path.name.lower().endswith(IDX_SUFFIXES):
        yield Source(array=arrays.read_idx_images(path, max_bytes))
    else:
        raise UserError(f"{spec}: unsupported file type '{path.suffix or path.name}' ({EXPECTED})")


def _builtin_path(spec: str) -> Path:
    name = spec.removeprefix("builtin:")
    if name not in BUILTINS:
        raise UserError(f"unknown data set '{spec}' (available: {', '.join('builtin:' + b for b in BUILTINS)})")
    return Path(__file__).parent / BUILTINS[name]


def _read_idx_pair(spec: str, max_bytes: int) -> np.ndarray:
    parts = [Path(p.strip()).expanduser() for p in spec.split(",")]
    if len(parts) != 2:
        raise UserError(f"{spec}: expected two files, images.gz,labels.gz")
    for part in parts:
        if not part.is_file():
            raise UserError(f"{part}: no such file (from '{spec}'; expected images.gz,labels.gz)")
    images = arrays.read_idx_images(parts[0], max_bytes)
    n_labels = len(arrays.read_idx_labels(parts[1]))
    if n_labels != len(images):
        raise UserError(f"{spec}: {len(images)} images but {n_labels} labels")
    return images


def _is_hidden(relative_path: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in relative_path.split("/"))


def _folder_source(folder: Path) -> Source:
    entries = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # prune hidden folders, walk in order
        prefix = Path(root).relative_to(folder).as_posix() + "/"
        for name in sorted(f for f in files if not f.startswith(".")):
            path = os.path.join(root, name)
            st = _stat(path)
            # Regular files only: reading a FIFO or device would hang or never end.
            if st is not None and stat.S_ISREG(st.st_mode):
                entries.append(Entry((prefix + name).removeprefix("./"), _file_reader(path),
                                     f"{st.st_size} {st.st_mtime_ns}"))
    if not entries:
        raise UserError(f"{folder}: folder has no files (hidden files and folders are ignored; {EXPECTED})")
    return Source(entries=entries)


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)  # follows symbolic links, as os.path.isfile does
    except OSError:
        return None


def _file_reader(path: str) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size > MAX_FILE_BYTES:
                    raise Undecodable(f"file larger than {MAX_FILE_BYTES // 2**20} MiB")
                return f.read()
        except OSError as e:
            raise Undecodable(f"unreadable ({e.strerror or e})") from None
    return read


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"cannot read {path} as a zip archive: {e}") from None


def _zip_source(zf: zipfile.ZipFile, path: Path) -> Source:
    members = [m for m in zf.infolist() if not m.is_dir()]
    total = sum(m.file_size for m in members)
    if total > MAX_ARCHIVE_BYTES:
        raise UserError(f"{path}: refusing a zip that expands to {total / 2**30:.1f} GiB "
                        f"(limit {MAX_ARCHIVE_BYTES // 2**30} GiB; zip bomb?)")
    source = Source()
    for member in members:
        reason = _refusal_reason(member)  # before the hidden check: "../x" must be refused, not ignored
        if reason:
            source.refused.append((member.filename, reason))
        elif not _is_hidden(member.filename):
            source.entries.append(Entry(member.filename, _member_reader(zf, member)))
    if not source.n_files:
        raise UserError(f"{path}: zip archive has no files (hidden files and folders are ignored)")
    return source


def _refusal_reason(member: zipfile.ZipInfo) -> str | None:
    name = member.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name) or ".." in name.split("/"):
        return "unsafe path in archive"
    if member.file_size > MAX_FILE_BYTES:
        return f"larger than {MAX_FILE_BYTES // 2**20} MiB uncompressed (zip bomb?)"
    if member.file_size > RATIO_CHECK_BYTES and member.file_size > MAX_COMPRESSION_RATIO * member.compress_size:
        return f"compression ratio above {MAX_COMPRESSION_RATIO}:1 (zip bomb?)"
    return None


def _member_reader(zf: zipfile.ZipFile, member: zipfile.ZipInfo) -> Callable[[], bytes]:
    # ZipFile reads safely from several threads. read(file_size) inflates in bounded steps and stops at
    # the declared size (a lying header then fails the CRC); zf.read() could inflate far more at once.
    def read() -> bytes:
        try:
            with zf.open(member) as f:
                return f.read(member.file_size)
        except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, EOFError, OSError) as e:
            raise Undecodable(f"unreadable archive member ({e})") from None
    return read
