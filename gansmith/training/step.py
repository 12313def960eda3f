"""The training step as phases (Goodfellow et al. 2014; the phase split of StyleGAN2-ADA, Karras et al. 2020):

1. D phase: D's loss on a real and a generated batch (D-main), plus the D regularizers that are due this step
   (D-regularize: R1, R2, WGAN-GP, ...), one backward, one optimizer step.
2. G phase: G's loss through D, with D's parameters frozen (G-main), plus the due G regularizers (G-regularize).

Losses come from the loss spec (gansmith/losses.py) and penalties from the regularizer registry
(gansmith/regularizers.py): a new loss or penalty plugs in there, not here. Everything D sees goes through
`discriminator_input` (DiffAugment, instance noise) in both phases. Which phases run, and how often, is the
trainer's decision (balance policy, --d-steps).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn.utils import clip_grad_norm_

from ..losses import LOSSES, LossSpec
from ..regularizers import REGULARIZERS, PenaltyInputs, Regularizer
from .augment import augment


def adam(params, lr: float, betas: tuple[float, float], device: torch.device) -> torch.optim.Adam:
    """G's and D's optimizer; the fused kernel does one pass over each parameter instead of ~10 elementwise ops."""
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=device.type in ("cpu", "cuda"))


@dataclass
class Phases:
    """What the phases need that stays fixed for a run, built from the frozen config."""
    loss: LossSpec
    real_label: float = 1.0            # < 1: one-sided label smoothing
    regularizers: tuple[tuple[Regularizer, float, int], ...] = ()   # (spec, weight, interval), weight > 0
    sync_gradients: Callable = lambda params: None   # averages gradients across ranks (distributed.py)
    amp_dtype: torch.dtype | None = None              # mixed precision for forward passes (--amp)
    device_type: str = "cpu"

    @classmethod
    def from_config(cls, cfg, **kwargs) -> "Phases":
        regs = tuple((r, r.weight(cfg), r.interval(cfg)) for r in REGULARIZERS if r.weight(cfg) > 0)
        return cls(LOSSES.get(cfg.loss), 1.0 - cfg.label_smooth, regs, **kwargs)

    def autocast(self):
        """Mixed precision around forward passes only (penalties and backward stay in float32)."""
        return torch.autocast(self.device_type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext()

    def regularize(self, network: str, inputs: PenaltyInputs, step: int, total: torch.Tensor) -> torch.Tensor:
        """Add the penalties of `network` that are due at `step`: lazily, every `interval` steps, scaled by it."""
        for reg, weight, interval in self.regularizers:
            if reg.network == network and step % interval == 0:
                total = total + weight * interval * reg.penalty(inputs)
        return total


@dataclass
class DiscriminatorView:
    """How D sees images this step: the DiffAugment policy and instance noise (both can change during a run)."""
    augment: tuple[str, ...] = ()
    noise_std: float = 0.0             # instance noise (Sønderby et al. 2016)

    def __call__(self, x: torch.Tensor, rng) -> torch.Tensor:
        x = augment(x, self.augment, rng)
        if self.noise_std > 0:
            x = x + self.noise_std * torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=rng)
        return x


@dataclass
class PhaseStats:
    loss: torch.Tensor
    grad_norm: torch.Tensor
    real_out: torch.Tensor | None = None
    fake_out: torch.Tensor | None = None


def optimizer_step(loss: torch.Tensor, params: list, opt, phases: Phases) -> torch.Tensor:
    """Backward, average across ranks, step; returns the gradient norm."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    phases.sync_gradients(params)
    grad_norm = clip_grad_norm_(params, float("inf"))
    opt.step()
    return grad_norm


def discriminator_phase(phases: Phases, D, G, opt_D, real, fake, view: DiscriminatorView, rng, step: int,
                        update: bool = True) -> PhaseStats:
    """One D update on a real and a (detached) fake batch; with update=False only measure D's loss."""
    with torch.set_grad_enabled(update):
        real_in, fake_in = view(real, rng), view(fake.float(), rng)
        with phases.autocast():
            real_out, fake_out = D(real_in), D(fake_in)
        real_out, fake_out = real_out.float(), fake_out.float()
        loss = phases.loss.d_loss(real_out, fake_out, phases.real_label)
    if not update:
        return PhaseStats(loss, torch.zeros((), device=loss.device), real_out, fake_out)
    total = phases.regularize("D", PenaltyInputs(D, G, real_in, fake_in, rng), step, loss)
    grad_norm = optimizer_step(total, list(D.parameters()), opt_D, phases)
    return PhaseStats(loss.detach(), grad_norm, real_out.detach(), fake_out.detach())


def generator_phase(phases: Phases, D, G, opt_G, G_params, fake, real, view: DiscriminatorView, rng,
                    step: int) -> PhaseStats:
    D.requires_grad_(False)  # frozen: G's loss must not leave gradients in D
    try:
        fake_in = view(fake.float(), rng)
        with phases.autocast():
            fake_out = D(fake_in)
        real_out = None
        if phases.loss.g_needs_real:
            with torch.no_grad(), phases.autocast():
                real_out = D(view(real, rng)).float()
        loss = phases.loss.g_loss(fake_out.float(), real_out)
        total = phases.regularize("G", PenaltyInputs(D, G, real, fake_in, rng), step, loss)
        grad_norm = optimizer_step(total, G_params, opt_G, phases)
    finally:
        D.requires_grad_(True)
    return PhaseStats(loss.detach(), grad_norm)
