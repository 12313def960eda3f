"""The run folder: everything a run leaves behind, and the one console channel of training.

    RUN/config.json     resolved config, data summary, versions, when it was created and resumed
    RUN/adjustments.json  what changed during the run on top of the config (doctor fixes, rollbacks)
    RUN/metrics.jsonl   one JSON object per logging interval (read by doctor, report, sweep)
    RUN/events/         TensorBoard scalars and sample grids
    RUN/samples/        grid-STEP.png from a fixed latent batch, and latest.png
    RUN/checkpoints/    step-STEP.pt (the newest `keep`), best.pt
"""
from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import __version__
from ..fileio import atomic_save_image, atomic_write_json, atomic_write_text
from ..images import make_grid, to_pil


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
        self._tb = None

    def create(self) -> None:
        for d in (self.path, self.samples, self.checkpoints):
            d.mkdir(parents=True, exist_ok=True)

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
            return json.loads(self.config_file.read_text())
        except (OSError, ValueError):
            return None

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
