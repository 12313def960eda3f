"""Regularizers: penalties added to D's or G's loss, each one `Regularizer` in the `REGULARIZERS` registry.

The training step (training/step.py) adds every regularizer whose weight is non-zero to its network's phase,
every `interval` steps and scaled by the interval ("lazy regularization", Karras et al. 2020), so the average
strength does not depend on the interval. A new penalty (e.g. path length on G) is a new registered spec.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .registry import Registry


@dataclass
class PenaltyInputs:
    """What a penalty may look at: the networks, D's inputs of this phase, and the step's random generator."""
    D: torch.nn.Module
    G: torch.nn.Module
    real: torch.Tensor          # real images as D saw them (augmented)
    fake: torch.Tensor          # generated images as D saw them
    rng: torch.Generator


@dataclass(frozen=True)
class Regularizer:
    name: str
    network: str                                     # "D" or "G": whose phase adds it
    weight: Callable[[object], float]                # from the config; 0 = off
    interval: Callable[[object], int]                # apply every this many steps
    penalty: Callable[[PenaltyInputs], torch.Tensor]


REGULARIZERS: Registry[Regularizer] = Registry("regularizer", "regularizer")


def r1_penalty(D, real: torch.Tensor) -> torch.Tensor:
    """E ||grad_x D(x)||^2 on real data (Mescheder et al. 2018); the caller scales it by gamma / 2."""
    return _gradient_norm_squared(D, real)


def r2_penalty(D, fake: torch.Tensor) -> torch.Tensor:
    """R1's twin on generated data, E ||grad_x D(G(z))||^2 (Roth et al. 2017; R3GAN uses both)."""
    return _gradient_norm_squared(D, fake)


def _gradient_norm_squared(D, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def gradient_penalty(D, real: torch.Tensor, fake: torch.Tensor, generator=None) -> torch.Tensor:
    """E (||grad D(x_hat)|| - 1)^2 on random interpolates of real and fake (Gulrajani et al. 2017)."""
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, generator=generator)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def _gp_weight(cfg) -> float:
    from .losses import LOSSES
    return cfg.gp_weight if "gp" in LOSSES.get(cfg.loss).penalties else 0.0


# Registration order is the order in which the penalties are added (and draw random numbers).
REGULARIZERS.register(Regularizer("gp", "D", _gp_weight, lambda cfg: 1,
                                  lambda x: gradient_penalty(x.D, x.real, x.fake, x.rng)))
REGULARIZERS.register(Regularizer("r1", "D", lambda cfg: 0.5 * (cfg.r1 or 0.0), lambda cfg: cfg.r1_every,
                                  lambda x: r1_penalty(x.D, x.real)))
REGULARIZERS.register(Regularizer("r2", "D", lambda cfg: 0.5 * cfg.r2, lambda cfg: cfg.r1_every,
                                  lambda x: r2_penalty(x.D, x.fake)))
