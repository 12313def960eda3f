"""The run folder: everything a run leaves behind, and the one console channel of training.

    RUN/config.json     resolved config, data summary, versions, when it was created and resumed
    RUN/adjustments.json  what changed during the run on top of the config (doctor fixes, rollbacks)
    RUN/metrics.jsonl   one JSON object per logging interval (read by doctor, report, sweep)
    RUN/events/         TensorBoard scalars and sample grids
    RUN/samples/        grid-STEP.png from a fixed latent batch, and latest.png
    RUN/checkpoints/    step-STEP.pt (the newest `keep`), best.pt
    RUN/.lock           held by the one process that trains the run (see `RunFolder.lock`)
"""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import platform
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from .. import __version__
from ..errors import UserError
from ..fileio import atomic_save_image, atomic_write_json, atomic_write_text
from ..images import make_grid, to_pil

try:
    import fcntl
except ImportError:  # not POSIX: no lock; the user must not start two trainings of one run
    fcntl = None


def log(message: str) -> None:
    """Print a line to the console without breaking the progress bar."""
    tqdm.write(message, file=sys.stderr)


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config_file = self.path / "config.json"
        self.adjustments_file = self.path / "adjustments.json"
        self.metrics_file = self.path / "metrics.jsonl"
        self.samples = self.path / "samples"
        self.checkpoints = self.path / "checkpoints"
        self.events = self.path / "events"
        self.lock_file = self.path / ".lock"
        self._tb = None

    def create(self) -> None:
        for d in (self.path, self.samples, self.checkpoints):
            with writing(d):
                d.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Be the one process that writes this run while the block runs; raise UserError naming the holder if
        another process trains it. The lock is an flock on RUN/.lock: the OS releases it when the process ends,
        however it ends, so a killed training never leaves a lock that blocks the next one. Readers (sample,
        doctor, eval, report) never take it: every file they read is replaced atomically or appended by lines.
        A folder this call created and nothing filled (the run failed before training) is removed again."""
        created = not self.path.exists()
        f = self._acquire()
        try:
            yield
        finally:
            if created:
                self._remove_if_unused()
            f.close()

    def _acquire(self):
        """The open, locked RUN/.lock with this process's pid, host and start time written in it."""
        while True:
            with writing(self.path):
                self.path.mkdir(parents=True, exist_ok=True)
                f = open(self.lock_file, "a+", encoding="utf-8")
            if fcntl is None:
                return f
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                f.seek(0)
                holder = f.read()
                f.close()
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise UserError(f"cannot lock {self.lock_file}: {e.strerror or e}") from None
                raise UserError(f"{self.path} is being trained by another process ({describe_holder(holder)}); "
                                "wait for it to end or stop it, or choose another --out") from None
            try:
                if os.stat(self.lock_file).st_ino == os.fstat(f.fileno()).st_ino:
                    break
            except FileNotFoundError:
                pass
            f.close()  # the file was removed by a process that gave up on the run before training: lock anew
        f.truncate(0)
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")
        f.flush()
        return f

    def _remove_if_unused(self) -> None:
        """Remove the folder if it holds nothing but the lock file and empty folders (called holding the lock)."""
        if any(p.is_file() and p != self.lock_file for p in self.path.rglob("*")):
            return
        self.lock_file.unlink(missing_ok=True)
        for d in sorted(self.path.rglob("*"), reverse=True) + [self.path]:
            with contextlib.suppress(OSError):
                d.rmdir()

    def write_config(self, config: dict, data_summary: dict, resumed: bool = False) -> None:
        """config.json; a resumed run keeps its creation time and adds this resume to `resumed`."""
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        previous = (self.read_config() or {}) if resumed else {}
        atomic_write_json(self.config_file, {
            "config": config,
            "data": data_summary,
            "versions": {"gansmith": __version__, "torch": torch.__version__,
                         "python": platform.python_version(), "platform": platform.platform()},
            "created": previous.get("created", now),
            "resumed": previous.get("resumed", []) + ([now] if resumed else []),
        })

    def write_adjustments(self, adjustments: dict) -> None:
        atomic_write_json(self.adjustments_file, adjustments)

    def read_config(self) -> dict | None:
        try:
            saved = json.loads(self.config_file.read_text())
        except (OSError, ValueError):
            return None
        return saved if isinstance(saved, dict) else None

    def saved_config(self) -> dict | None:
        """The run's resolved config from config.json, if it is readable."""
        config = (self.read_config() or {}).get("config")
        return config if isinstance(config, dict) else None

    # --- metrics.jsonl -----------------------------------------------------------------------------
    def read_metrics(self) -> list[dict]:
        return read_metrics(self.metrics_file)

    def append_metrics(self, record: dict) -> None:
        with open(self.metrics_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, allow_nan=True) + "\n")

    def truncate_metrics(self, step: int) -> None:
        """Drop records logged after `step` (they will be logged again when a resumed run redoes them)."""
        if self.metrics_file.exists():
            kept = [r for r in self.read_metrics() if r.get("step", 0) <= step]
            atomic_write_text(self.metrics_file, "".join(json.dumps(r) + "\n" for r in kept))

    # --- TensorBoard -------------------------------------------------------------------------------
    def tensorboard(self, purge_step: int | None = None):
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter  # slow import: only when training
            self._tb = SummaryWriter(str(self.events), purge_step=purge_step)
        return self._tb

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    # --- samples -----------------------------------------------------------------------------------
    def save_pictures(self, pictures: dict) -> None:
        """Pictures a model can show besides samples (e.g. StyleGAN's truncation), as samples/NAME.png."""
        for name, image in pictures.items():
            atomic_save_image(self.samples / f"{name}.png", to_pil(image))

    def save_sample_grid(self, images: np.ndarray, step: int) -> Path:
        """Save a grid of uint8 N x H x W x C samples as grid-STEP.png and latest.png."""
        grid = make_grid(images)
        path = self.samples / f"grid-{step:08d}.png"
        atomic_save_image(path, to_pil(grid))
        atomic_save_image(self.samples / "latest.png", to_pil(grid))
        return path


class ReadOnlyRun(RunFolder):
    """The run folder as ranks other than 0 see it in distributed training: readable, never written."""

    def create(self) -> None: pass
    def lock(self): return contextlib.nullcontext()
    def write_config(self, config: dict, data_summary: dict, resumed: bool = False) -> None: pass
    def write_adjustments(self, adjustments: dict) -> None: pass
    def append_metrics(self, record: dict) -> None: pass
    def truncate_metrics(self, step: int) -> None: pass
    def save_sample_grid(self, images, step: int) -> None: pass
    def save_pictures(self, pictures: dict) -> None: pass
    def tensorboard(self, purge_step: int | None = None): return NullWriter()


class NullWriter:
    def add_scalar(self, *args, **kwargs): pass
    def add_images(self, *args, **kwargs): pass
    def close(self): pass


def describe_holder(lock_text: str) -> str:
    """'pid 123 on host, since 2026-12-06T15:20:00+0000' from a lock file's contents (what is known of them)."""
    try:
        h = json.loads(lock_text)
        return f"pid {h['pid']} on {h['host']}, since {h['started']}"
    except (ValueError, KeyError, TypeError):
        return "it is starting"


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """An OSError while creating the run folder -> one line saying why `path` cannot be written."""
    try:
        yield
    except FileExistsError:
        raise UserError(f"cannot write {path}: it is a file, not a folder") from None
    except NotADirectoryError:
        raise UserError(f"cannot write {path}: a part of that path is a file, not a folder") from None
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def read_metrics(path: str | Path) -> list[dict]:
    """All well-formed records of a metrics.jsonl (a line cut short by a crash is ignored)."""
    records = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
    except OSError:
        pass
    return records


def crossed(before: int, after: int, every_kimg: float) -> bool:
    """True when the images-shown counter passed a multiple of `every_kimg` thousand images."""
    every = every_kimg * 1000
    return math.floor(after / every) > math.floor(before / every)
