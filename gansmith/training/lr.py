"""Learning-rate decay over a run: many GAN runs only settle once the learning rate drops (sharper modes,
less jitter at the end). Both learning rates follow the same factor of the run's progress, which is
images shown / --kimg (or, without --kimg, the elapsed share of --minutes), so a resumed run continues
on the same curve.

"late" holds the learning rates for most of the run and decays them only over the last part: a decay from
the start stops G before it has spread over the data (it lost modes on the 2-D grid,
benchmarks/results/mode_collapse_2d.md), a late one only settles what the run has already found."""
from __future__ import annotations

import math

LR_DECAYS = ("none", "linear", "cosine", "late")
LATE_START = 0.75  # "late": the share of the run before the decay begins


def decay_factor(kind: str, progress: float) -> float:
    """The learning rate's multiplier at `progress` in [0, 1]: 1 at the start, 0 at the end (except none)."""
    p = min(max(progress, 0.0), 1.0)
    if kind == "linear":
        return 1.0 - p
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if kind == "late":  # constant, then a cosine to 0 over the last quarter
        return decay_factor("cosine", (p - LATE_START) / (1.0 - LATE_START))
    return 1.0
