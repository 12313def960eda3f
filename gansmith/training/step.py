"""The two-phase GAN training step (Goodfellow et al. 2014; DCGAN, Radford et al. 2016).

1. D phase: D learns to output "real" (1) on a real batch and "fake" (0) on a generated batch.
2. G phase: G is updated through D, with D's parameters frozen, so that D calls its samples real (1).

The generated batch is produced once and reused by both phases, as in pytorch/examples' DCGAN: D sees
it detached, G backpropagates through it after D's update.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import losses


@dataclass
class StepStats:
    loss_d: torch.Tensor
    loss_g: torch.Tensor
    d_real: torch.Tensor   # mean probability D gives real images
    d_fake: torch.Tensor   # mean probability D gives generated images (before D's update)

    def as_tensor(self) -> torch.Tensor:
        return torch.stack([self.loss_d, self.loss_g, self.d_real, self.d_fake]).detach()


STAT_NAMES = ("loss_d", "loss_g", "d_real", "d_fake")


def train_step(G, D, opt_G, opt_D, real: torch.Tensor, z: torch.Tensor, loss: str) -> StepStats:
    fake = G(z)
    loss_d, real_logits, fake_logits = discriminator_phase(D, opt_D, real, fake.detach(), loss)
    loss_g = generator_phase(D, opt_G, fake, loss)
    return StepStats(loss_d, loss_g, torch.sigmoid(real_logits).mean(), torch.sigmoid(fake_logits).mean())


def discriminator_phase(D, opt_D, real, fake, loss):
    real_logits, fake_logits = D(real), D(fake)
    loss_d = losses.discriminator_loss(loss, real_logits, fake_logits)
    opt_D.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_D.step()
    return loss_d.detach(), real_logits.detach(), fake_logits.detach()


def generator_phase(D, opt_G, fake, loss):
    D.requires_grad_(False)  # frozen: G's loss must not leave gradients in D
    try:
        loss_g = losses.generator_loss(loss, D(fake))
        opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_G.step()
    finally:
        D.requires_grad_(True)
    return loss_g.detach()
