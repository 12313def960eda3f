"""GAN losses. Each is one `LossSpec` in the `LOSSES` registry; every function takes D's raw outputs.

D maximizes its separation of real from fake; G tries to make D call its samples real.
- `ns`: binary cross-entropy, D on real (label 1) and fake (label 0), G non-saturating: BCE of D(G(z))
  against label 1 (Goodfellow et al. 2014).
- `hinge`: Lim & Ye 2017, Miyato et al. 2018.
- `wgan-gp`: Wasserstein critic (Arjovsky et al. 2017) with the gradient penalty of Gulrajani et al. 2017.
- `lsgan`: least squares with 0/1 targets (Mao et al. 2017).
- `rpgan`: relativistic pairing (Jolicoeur-Martineau 2019), as in R3GAN (Huang et al. 2024): each fake is judged
  against a real one, softplus(D(fake) - D(real)) for D and the mirror for G.
A new loss is a new `LossSpec` registered from any module; see docs/architecture.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .registry import Registry

Tensor = torch.Tensor


@dataclass(frozen=True)
class LossSpec:
    name: str
    help: str
    d_loss: Callable[[Tensor, Tensor, float], Tensor]    # (D(real), D(fake), real label) -> D's loss
    g_loss: Callable[[Tensor, Tensor], Tensor]           # (D(fake), D(real)) -> G's loss
    threshold: float = 0.0                 # D's output that separates 'real' from 'fake' calls (D's accuracy)
    balance: tuple[float, float] | None = None  # --balance: D winning below the first D-loss level, too weak above
    saturated: float | None = None         # the doctor: D's loss this low means D wins outright; None: no fixed scale
    probabilities: bool = False            # D's outputs are logits of P(real): reported through a sigmoid
    target_label: bool = False             # D has a target label, so one-sided label smoothing applies
    g_needs_real: bool = False             # G's loss also needs D's verdict on real images (relativistic losses)
    penalties: tuple[str, ...] = ()        # regularizers that are part of the loss (wgan-gp's gradient penalty)


LOSSES: Registry[LossSpec] = Registry("loss", "--loss")


def _ns_d(real: Tensor, fake: Tensor, real_label: float) -> Tensor:
    """`real_label` < 1 is one-sided label smoothing (Salimans et al. 2016): only the real target moves."""
    return (F.binary_cross_entropy_with_logits(real, torch.full_like(real, real_label))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def _rp_pairs(first: Tensor, second: Tensor) -> Tensor:
    """softplus(first - second) over real/fake pairs; D's outputs per sample are averaged first when D gives
    several (patch or multi-scale discriminators)."""
    return F.softplus(per_sample(first) - per_sample(second)).mean()


def per_sample(out: Tensor) -> Tensor:
    return out.reshape(out.shape[0], -1).mean(1)


# D-loss levels at equilibrium (D outputs 0.5 / 0 for everything): ns 2 ln 2 = 1.39, hinge 2, lsgan 0.25,
# rpgan ln 2 = 0.69. The balance and doctor levels sit below and above them.
LOSSES.register(LossSpec(
    "ns", "non-saturating cross-entropy (the classic GAN)", _ns_d,
    lambda fake, real: F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake)),
    balance=(0.1, 1.6), saturated=0.05, probabilities=True, target_label=True))
LOSSES.register(LossSpec(
    "hinge", "hinge loss (SNGAN, BigGAN)", lambda real, fake, _: F.relu(1 - real).mean() + F.relu(1 + fake).mean(),
    lambda fake, real: -fake.mean(), balance=(0.1, 2.2), saturated=0.05))
LOSSES.register(LossSpec(
    "wgan-gp", "Wasserstein critic with gradient penalty (--gp-weight)", lambda real, fake, _: fake.mean() - real.mean(),
    lambda fake, real: -fake.mean(), penalties=("gp",)))
LOSSES.register(LossSpec(
    "lsgan", "least squares", lambda real, fake, label: 0.5 * ((real - label) ** 2).mean() + 0.5 * (fake ** 2).mean(),
    lambda fake, real: 0.5 * ((fake - 1) ** 2).mean(), threshold=0.5, balance=(0.02, 0.4), saturated=0.01,
    target_label=True))
LOSSES.register(LossSpec(
    "rpgan", "relativistic pairing (R3GAN; pair it with --r1 and --r2)", lambda real, fake, _: _rp_pairs(fake, real),
    lambda fake, real: _rp_pairs(real, fake), balance=(0.05, 0.8), saturated=0.025, g_needs_real=True))


def discriminator_loss(kind: str, real: Tensor, fake: Tensor, real_label: float = 1.0) -> Tensor:
    return LOSSES.get(kind).d_loss(real, fake, real_label)


def generator_loss(kind: str, fake: Tensor, real: Tensor | None = None) -> Tensor:
    return LOSSES.get(kind).g_loss(fake, real)
