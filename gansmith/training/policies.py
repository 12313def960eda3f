"""Policies that watch the step's numbers and change what the loop does next.

- `BalancePolicy`: keeps D from winning outright (its loss near zero, so G's gradients vanish) by
  skipping D's updates until it recovers, and gives a weak D extra steps.
- `DivergenceGuard`: spots a non-finite loss or an exploding gradient, so the loop can roll back.
Both keep their state as plain data for checkpoints, and report interventions as events.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from ..events import event

ROLLBACK_LR_FACTOR = 0.5   # each rollback after a divergence multiplies both learning rates by this
RECOVERED = 2.0            # D counts as recovered once its smoothed loss is back above this many times `low`


@dataclass
class BalancePolicy:
    low: float             # D's smoothed loss below this: D is winning (the loss spec's `balance` levels)
    high: float            # above this: D is too weak
    smoothing: float = 0.9
    loss_ema: float | None = None
    skipping: bool = False
    boosting: bool = False
    skipped: int = 0       # D updates skipped in this logging interval
    extra: int = 0         # extra D updates in this logging interval
    events: list = field(default_factory=list)

    def d_updates(self, d_steps: int) -> int:
        """How many D updates to make this step: 0 while D is winning, one more while it is too weak."""
        if self.skipping:
            self.skipped += 1
            return 0
        if self.boosting:
            self.extra += 1
            return d_steps + 1
        return d_steps

    def observe(self, loss_d: float, step: int) -> None:
        if not math.isfinite(loss_d):
            return
        self.loss_ema = loss_d if self.loss_ema is None else self.smoothing * self.loss_ema + (1 - self.smoothing) * loss_d
        low, high = self.low, self.high
        if not self.skipping and self.loss_ema < low:
            self.skipping = True
            self.events.append(event("balance", "info", f"D is winning (its loss {self.loss_ema:.3f} < {low}): "
                                     "skipping D updates until it recovers",
                                     {"step": step, "loss_d": round(self.loss_ema, 4), "threshold": low}))
        elif self.skipping and self.loss_ema >= RECOVERED * low:
            self.skipping = False
            self.events.append(event("balance", "info", f"D recovered (loss {self.loss_ema:.3f}): D updates resume",
                                     {"step": step, "loss_d": round(self.loss_ema, 4)}))
        self.boosting = not self.skipping and self.loss_ema > high

    def take_interval_counts(self) -> dict:
        counts = {"d_skipped": self.skipped, "d_extra": self.extra}
        self.skipped = self.extra = 0
        return counts

    def state_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("events", "low", "high")}

    def load_state_dict(self, state: dict) -> None:
        known = {f.name for f in fields(self)}
        for k, v in state.items():
            if k in known:
                setattr(self, k, v)


@dataclass
class DivergenceGuard:
    """A step diverged when a loss is not finite or a gradient norm exceeds `factor` times its running mean."""
    factor: float = 100.0
    warmup: int = 50
    max_rollbacks: int = 3
    rollbacks: int = 0
    grad_ema: dict = field(default_factory=dict)
    seen: int = 0

    def check(self, losses: dict, grad_norms: dict) -> str | None:
        """Why this step diverged, or None."""
        for name, v in {**losses, **grad_norms}.items():
            if not math.isfinite(v):
                return f"{name} is {v}"
        self.seen += 1
        for name, v in grad_norms.items():
            if v == 0:
                # no update was made (the balance policy skipped D): a zero norm is not a data point, and averaging
                # it in would make D's first normal gradient afterwards look like an explosion
                continue
            mean = self.grad_ema.get(name)
            if mean is not None and self.seen > self.warmup and v > self.factor * mean:
                return f"{name} exploded to {v:.3g} ({v / mean:.0f}x its running mean {mean:.3g})"
            self.grad_ema[name] = v if mean is None else 0.99 * mean + 0.01 * v
        return None

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)
