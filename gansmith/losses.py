"""GAN losses. D maximizes its separation of real from fake; G tries to make D call its samples real.

Every loss takes D's raw logits. `ns` is the classic binary cross-entropy: D on real (label 1) and
fake (label 0); G non-saturating, i.e. BCE of D(G(z)) against label 1 (Goodfellow et al. 2014).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("ns",)


def discriminator_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    if kind == "ns":
        return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    raise ValueError(f"unknown loss {kind!r}")


def generator_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    if kind == "ns":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    raise ValueError(f"unknown loss {kind!r}")
