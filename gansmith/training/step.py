"""The two-phase GAN training step (Goodfellow et al. 2014; DCGAN, Radford et al. 2016).

1. D phase: D learns to call a real batch real and a generated batch fake.
2. G phase: G is updated through D, with D's parameters frozen, so that D calls its samples real.

Everything D sees goes through `discriminator_input` (DiffAugment, instance noise) in both phases.
The regularizers (R1, WGAN-GP) are added to D's loss here; which phases run, and how often, is the
loop's decision (balance policy, --d-steps).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn.utils import clip_grad_norm_

from .. import losses
from .augment import augment


def adam(params, lr: float, betas: tuple[float, float], device: torch.device) -> torch.optim.Adam:
    """G's and D's optimizer. The fused kernel (one pass over each parameter instead of ~10 elementwise ops)
    makes a 28 px batch-16 step 6-7 % faster on CPU (benchmarks/results/defaults_sweep.md round 9)."""
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=device.type in ("cpu", "cuda"))


@dataclass
class StepOptions:
    loss: str = "ns"
    real_label: float = 1.0          # < 1: one-sided label smoothing
    r1_gamma: float = 0.0
    r1_every: int = 16
    gp_weight: float = 10.0
    augment: tuple[str, ...] = ()
    noise_std: float = 0.0           # instance noise (Sønderby et al. 2016)
    sync_gradients: Callable = lambda params: None   # averages gradients across ranks (distributed.py)
    amp_dtype: torch.dtype | None = None              # mixed precision for forward passes (--amp)
    device_type: str = "cpu"

    def autocast(self):
        """Mixed precision around forward passes only (penalties and backward stay in float32)."""
        return torch.autocast(self.device_type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext()


@dataclass
class PhaseStats:
    loss: torch.Tensor
    grad_norm: torch.Tensor
    real_out: torch.Tensor | None = None
    fake_out: torch.Tensor | None = None


def discriminator_input(x: torch.Tensor, opts: StepOptions, rng) -> torch.Tensor:
    x = augment(x, opts.augment, rng)
    if opts.noise_std > 0:
        x = x + opts.noise_std * torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=rng)
    return x


def discriminator_phase(D, opt_D, real, fake, opts: StepOptions, rng, step: int, update: bool = True) -> PhaseStats:
    """One D update on a real and a (detached) fake batch; with update=False only measure D's loss."""
    with torch.set_grad_enabled(update):
        real_in, fake_in = discriminator_input(real, opts, rng), discriminator_input(fake.float(), opts, rng)
        with opts.autocast():
            real_out, fake_out = D(real_in), D(fake_in)
        real_out, fake_out = real_out.float(), fake_out.float()
        loss = losses.discriminator_loss(opts.loss, real_out, fake_out, opts.real_label)
    if not update:
        return PhaseStats(loss, torch.zeros((), device=loss.device), real_out, fake_out)
    total = loss
    if opts.loss == "wgan-gp":
        total = total + opts.gp_weight * losses.gradient_penalty(D, real_in, fake_in, rng)
    if opts.r1_gamma > 0 and step % opts.r1_every == 0:
        # lazy R1 (Karras et al. 2020): every k steps, scaled by k so the average strength is unchanged
        total = total + 0.5 * opts.r1_gamma * opts.r1_every * losses.r1_penalty(D, real_in)
    opt_D.zero_grad(set_to_none=True)
    total.backward()
    opts.sync_gradients(list(D.parameters()))
    grad_norm = clip_grad_norm_(D.parameters(), float("inf"))
    opt_D.step()
    return PhaseStats(loss.detach(), grad_norm, real_out.detach(), fake_out.detach())


def generator_phase(D, opt_G, G_params, fake, opts: StepOptions, rng) -> PhaseStats:
    D.requires_grad_(False)  # frozen: G's loss must not leave gradients in D
    try:
        with opts.autocast():
            fake_out = D(discriminator_input(fake.float(), opts, rng))
        loss = losses.generator_loss(opts.loss, fake_out.float())
        opt_G.zero_grad(set_to_none=True)
        loss.backward()
        opts.sync_gradients(G_params)
        grad_norm = clip_grad_norm_(G_params, float("inf"))
        opt_G.step()
    finally:
        D.requires_grad_(True)
    return PhaseStats(loss.detach(), grad_norm)
