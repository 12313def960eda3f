"""The training console: what a run is about to do, and how far it is against its budget.

`startup_summary` says what was found and chosen (data, model, precision, device, duration, outputs) before the
first step. `Progress` shows the run against its budget (kimg or minutes, whichever ends it first) with an ETA,
the kimg shown and the latest losses: as a live bar on a terminal, and as one plain line per logging interval
when the console is a file or a pipe (CI, nohup, a notebook), where a bar's carriage returns would pile up.
"""
from __future__ import annotations

import sys
import time

from tqdm import tqdm

from .augment import SMALL_DATA, auto_policy
from .config import TrainConfig
from .run import log


def budget_fraction(cfg: TrainConfig, images_seen: int, elapsed: float) -> float:
    """How much of the run's budget is used: the larger of the kimg and the time fractions (the run ends at 1)."""
    by_kimg = images_seen / (cfg.kimg * 1000) if cfg.kimg is not None else 0.0
    by_time = elapsed / (cfg.minutes * 60) if cfg.minutes is not None else 0.0
    return min(1.0, max(by_kimg, by_time))


def budget_text(cfg: TrainConfig) -> str:
    parts = ([f"{cfg.kimg:g} kimg (counted across resumes)"] if cfg.kimg is not None else []) + (
        [f"{cfg.minutes:g} minutes of this invocation"] if cfg.minutes is not None else [])
    return " or ".join(parts) + (", whichever comes first" if len(parts) > 1 else "")


def precision_text(cfg: TrainConfig) -> str:
    return "bf16 autocast" if cfg.amp else "float32"


def startup_summary(cfg: TrainConfig, data, run_path, images_seen: int) -> list[str]:
    """The lines printed before the first step: what was found, what was chosen, and where outputs go."""
    colour = "colour" if cfg.channels == 3 else "grayscale"
    skipped = f", {len(data.skipped)} unreadable files skipped" if data.skipped else ""
    lines = [
        f"data:      {data.source}: {data.n:,} images, {cfg.res} px, {colour}{skipped}",
        f"model:     {cfg.arch}, width {cfg.width}, z {cfg.z_dim}, loss {cfg.loss}, batch {cfg.batch}"
        + (f", EMA {cfg.ema:g}" if cfg.ema else ""),
        f"compute:   {cfg.device}, {precision_text(cfg)}",
        f"duration:  {budget_text(cfg)}" + (f"; resuming at {images_seen / 1000:.1f} kimg" if images_seen else ""),
        f"outputs:   {run_path} (samples/latest.png, report.html, metrics.jsonl, checkpoints/)",
    ]
    if cfg.augment:
        automatic = cfg.augment == auto_policy(data.n)
        lines.append(f"augment:   {cfg.augment} (DiffAugment" + (
            f"; on by itself below {SMALL_DATA:,} images, so that D does not memorize them; --augment none turns "
            "it off)" if automatic else ")"))
    return lines


class Progress:
    """The run against its budget: a bar on a terminal, a plain line per logging interval elsewhere, nothing when
    disabled (--quiet, ranks other than 0)."""

    def __init__(self, cfg: TrainConfig, images_seen: int, enabled: bool, terminal: bool | None = None):
        self.cfg, self.enabled = cfg, enabled
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.start = time.monotonic()
        self.initial = budget_fraction(cfg, images_seen, 0.0)  # a resumed run starts part-way
        self.last: dict = {}
        self.bar = tqdm(total=1.0, initial=self.initial, desc="training",
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]",
                        dynamic_ncols=True, disable=not (enabled and self.terminal))
        self.bar.set_postfix_str(self.numbers(images_seen), refresh=False)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def numbers(self, images_seen: int) -> str:
        """kimg shown against the budget, then the latest interval's losses and speed."""
        kimg = f"{images_seen / 1000:.2f}" + (f"/{self.cfg.kimg:g}" if self.cfg.kimg is not None else "") + " kimg"
        if not self.last:
            return kimg
        r = self.last
        return (f"{kimg}, loss D {r['loss_d']:.3f} G {r['loss_g']:.3f}, D(real) {r['d_real']:.2f} "
                f"D(fake) {r['d_fake']:.2f}, {r['img_per_s']:.0f} img/s")

    def update(self, images_seen: int) -> None:
        """After a step (or a rollback, which moves backwards)."""
        if self.bar.disable:
            return
        self.bar.n = budget_fraction(self.cfg, images_seen, self.elapsed())
        self.bar.set_postfix_str(self.numbers(images_seen), refresh=False)
        self.bar.update(0)

    def interval(self, record: dict, images_seen: int) -> None:
        """After a logging interval: its numbers join the bar, or make one plain line."""
        self.last = record
        if not self.enabled:
            return
        if self.terminal:
            self.update(images_seen)
        else:
            log(self.plain_line(images_seen))

    def plain_line(self, images_seen: int) -> str:
        """Like the bar: 'training  40% [00:12<00:18, 0.12/0.3 kimg, loss D ...]'."""
        elapsed = self.elapsed()
        fraction = budget_fraction(self.cfg, images_seen, elapsed)
        return (f"training {100 * fraction:3.0f}% [{tqdm.format_interval(elapsed)}<{self.eta(fraction, elapsed)}, "
                f"{self.numbers(images_seen)}]")

    def eta(self, fraction: float, elapsed: float) -> str:
        """The time left at the average pace of this invocation so far."""
        progress = fraction - self.initial
        if progress <= 0 or elapsed <= 0:
            return "?"
        return tqdm.format_interval(elapsed * (1 - fraction) / progress)

    def close(self) -> None:
        self.bar.close()
