"""Adjustments: what changes during a run on top of its frozen config.

The run doctor's remedies (with --auto-fix) and the divergence guard's rollbacks change how training goes on:
learning rates scaled, augmentation or the balance policy turned on. They are run state, not config: kept in
every checkpoint (so a resumed run goes on with them), written to RUN/adjustments.json beside config.json (so
the report and a reader see them), and logged as events when they happen.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

SCALES = ("g_lr_scale", "d_lr_scale")   # multiplied into the current scale
SWITCHES = ("augment", "balance")       # replace the config's value


@dataclass
class Adjustments:
    g_lr_scale: float = 1.0
    d_lr_scale: float = 1.0
    augment: str | None = None       # replaces --augment when set
    balance: bool | None = None      # replaces --balance when set
    history: list = field(default_factory=list)   # every change: {"step", "by", "changes"}

    def apply(self, changes: dict, step: int, by: str) -> None:
        """Apply a change such as {"g_lr_scale": 0.5, "augment": "translation,cutout"} (scales multiply)."""
        unknown = set(changes) - set(SCALES) - set(SWITCHES)
        if unknown:
            raise ValueError(f"not an adjustment: {', '.join(sorted(unknown))}")
        for k, v in changes.items():
            setattr(self, k, getattr(self, k) * v if k in SCALES else v)
        self.history.append({"step": step, "by": by, "changes": dict(changes)})

    def augment_policy(self, cfg) -> str:
        return cfg.augment if self.augment is None else self.augment

    def balance_on(self, cfg) -> bool:
        return cfg.balance if self.balance is None else self.balance

    def state_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict | None, legacy_lr_scale: float = 1.0) -> "Adjustments":
        """From a checkpoint; checkpoints written before adjustments existed kept one rollback scale for both."""
        if state is None:
            return cls(g_lr_scale=legacy_lr_scale, d_lr_scale=legacy_lr_scale)
        return cls(**state)
