"""Optimizing the image: L-BFGS or Adam with iterate averaging, and a stopping rule on the loss.

`evaluate(image) -> (total, terms, gradient)` is what the optimizers call: the gradient may come from one
pass through the network (`losses.Objective.evaluate`) or be assembled from tiles (`tiles.TiledObjective`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

Evaluate = Callable[[torch.Tensor], "tuple[float, dict[str, float], torch.Tensor]"]
FIRST_STEP = 0.5   # mean pixel change (0-255 units) of L-BFGS's first step at each level


@dataclass
class Method:
    """How one pyramid level is optimized."""
    name: str = "lbfgs"       # lbfgs | adam
    lr: float = 2.0           # Adam only, pixel units
    history: int = 50         # L-BFGS only: (s, y) pairs kept, each pair two image-sized tensors
    average: float = 0.0      # Adam only: decay of the iterate average (0 = off)
    tolerance: float = 0.0    # stop when the loss falls by less than this fraction per iteration (0 = off)


def optimize(evaluate: Evaluate, image: torch.Tensor, steps: int, method: Method) -> Iterator[dict[str, float]]:
    """Optimize `image` in place for at most `steps` iterations, yielding the loss terms of each one.

    Every iteration costs one evaluation: L-BFGS runs without line search. The image is clamped to [0, 255]
    after every step (as in the PyTorch tutorial). With `method.average`, `image` ends as the average of the
    iterates instead of the last one (Polyak & Juditsky 1992; crowsonkb's style-transfer-pytorch averages
    Adam's iterates the same way): Adam's last iterate jitters around the minimum, its average does not.
    """
    # The losses are means (size-independent), so their gradient per pixel shrinks as 1 / pixel count.
    # L-BFGS skips curvature updates below a fixed threshold (y.s < 1e-10), which made large levels stall;
    # optimizing the sum over pixels instead keeps it scale-free at every size.
    scale = float(image.shape[-1] * image.shape[-2])
    if method.name == "lbfgs":
        opt = torch.optim.LBFGS([image], lr=1.0, max_iter=1, history_size=method.history,
                                tolerance_grad=0.0, tolerance_change=0.0)
        # PyTorch's first step, 1 / |g|_1 (all pixels together move by 1), is below float32's resolution on
        # large images: nothing changes, no curvature is learnt and the second step is the raw gradient
        # (docs/style.md, "Optimizer"). Here the first step moves the pixels by FIRST_STEP on average.
        opt.param_groups[0]["lr"] = FIRST_STEP * image.numel()
    else:
        opt = torch.optim.Adam([image], lr=method.lr)
    average = IterateAverage(method.average) if method.average else None
    last_terms, totals = {}, []

    def closure():
        total, terms, grad = evaluate(image)
        image.grad = grad * scale
        last_terms.update(terms)
        return torch.tensor(total * scale)

    for _ in range(steps):
        totals.append(float(opt.step(closure)) / scale)
        if method.name == "lbfgs":
            opt.param_groups[0]["lr"] = 1.0   # the first step is taken: from now on L-BFGS's own steps
        with torch.no_grad():
            image.clamp_(0, 255)
        if average is not None:
            average.update(image)
        yield dict(last_terms)
        if converged(totals, method.tolerance):
            break
    image.grad = None
    if average is not None:
        with torch.no_grad():
            image.copy_(average.value())


def converged(totals: list[float], tolerance: float, window: int = 5) -> bool:
    """True when the loss fell by less than `tolerance` (relative) per iteration over the last `window`."""
    if tolerance <= 0 or len(totals) <= window:
        return False
    old, new = totals[-window - 1], totals[-1]
    return old - new < tolerance * window * abs(new)


class IterateAverage:
    """Exponential moving average of the iterates, bias-corrected so the starting image does not linger."""

    def __init__(self, decay: float):
        self.decay, self.count, self.sum = decay, 0, None

    def update(self, image: torch.Tensor) -> None:
        x = image.detach()
        self.sum = (1 - self.decay) * x if self.sum is None else self.decay * self.sum + (1 - self.decay) * x
        self.count += 1

    def value(self) -> torch.Tensor:
        return self.sum / (1 - self.decay ** self.count)
