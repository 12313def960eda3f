"""Learning-rate decay over a run: many GAN runs only settle once the learning rate drops (sharper modes,
less jitter at the end). Both learning rates follow the same factor of the run's progress, which is
images shown / --kimg (or, without --kimg, the elapsed share of --minutes), so a resumed run continues
on the same curve."""
from __future__ import annotations

import math

LR_DECAYS = ("none", "linear", "cosine")


def decay_factor(kind: str, progress: float) -> float:
    """The learning rate's multiplier at `progress` in [0, 1]: 1 at the start, 0 at the end (except none)."""
    p = min(max(progress, 0.0), 1.0)
    if kind == "linear":
        return 1.0 - p
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    return 1.0
