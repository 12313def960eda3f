"""GAN losses and gradient penalties. Every function takes D's raw outputs ("logits" / scores).

D maximizes its separation of real from fake; G tries to make D call its samples real.
- `ns`: binary cross-entropy, D on real (label 1) and fake (label 0), G non-saturating: BCE of D(G(z))
  against label 1 (Goodfellow et al. 2014).
- `hinge`: Lim & Ye 2017, Miyato et al. 2018.
- `wgan-gp`: Wasserstein critic (Arjovsky et al. 2017) with the gradient penalty of Gulrajani et al. 2017.
- `lsgan`: least squares with 0/1 targets (Mao et al. 2017).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("ns", "hinge", "wgan-gp", "lsgan")


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    """`real_label` < 1 is one-sided label smoothing (Salimans et al. 2016): only the real target moves."""
    if kind == "ns":
        return (F.binary_cross_entropy_with_logits(real, torch.full_like(real, real_label))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    if kind == "lsgan":
        return 0.5 * ((real - real_label) ** 2).mean() + 0.5 * (fake ** 2).mean()
    raise ValueError(f"unknown loss {kind!r}")


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    if kind == "ns":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind in ("hinge", "wgan-gp"):
        return -fake.mean()
    if kind == "lsgan":
        return 0.5 * ((fake - 1) ** 2).mean()
    raise ValueError(f"unknown loss {kind!r}")


def decision_threshold(kind: str) -> float:
    """D's output that separates 'real' from 'fake' calls (for D's accuracy)."""
    return 0.5 if kind == "lsgan" else 0.0


def r1_penalty(D, real: torch.Tensor) -> torch.Tensor:
    """E ||grad_x D(x)||^2 on real data (Mescheder et al. 2018); the caller scales it by gamma / 2."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(real).sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def gradient_penalty(D, real: torch.Tensor, fake: torch.Tensor, generator=None) -> torch.Tensor:
    """E (||grad D(x_hat)|| - 1)^2 on random interpolates of real and fake (Gulrajani et al. 2017)."""
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, generator=generator)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
