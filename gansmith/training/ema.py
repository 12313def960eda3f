"""Exponential moving average of the generator's weights (Karras et al. 2018; Yazici et al. 2019).

Sampling from the average smooths out the oscillation of the last few updates. During training the buffers
(batch-norm statistics) are copied from the trained G, which is free and good enough for previews and the
doctor; for sampling, `standing_statistics` re-estimates them for the averaged weights. The decay warms up as
in TensorFlow's ExponentialMovingAverage (num_updates): early in a run the average would otherwise drag in the
random initial weights for thousands of steps (docs/defaults.md, "EMA").
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(G: nn.Module) -> nn.Module:
    ema = copy.deepcopy(G).eval()
    ema.requires_grad_(False)
    return ema


def ema_decay(decay: float, step: int) -> float:
    """The decay used at `step` (0-based): min(decay, (1 + step) / (10 + step))."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, G: nn.Module, decay: float) -> None:
    ema_params, params = list(ema.parameters()), list(G.parameters())
    torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), G.buffers()):
        b_ema.copy_(b)


STANDING_SAMPLES = 1024  # Stacked MNIST KL 0.117 / 0.118 / 0.116 from 256 / 1,024 / 16,384 samples


@torch.no_grad()
def standing_statistics(G: nn.Module, batch: int, samples: int = STANDING_SAMPLES, seed: int = 0) -> nn.Module:
    """Re-estimate G's batch-norm statistics in place as the plain average over `samples` fresh latents (fixed seed),
    drawn in batches of `batch` (the training batch, whose batch statistics G learned with). Returns G.

    The EMA's weights are an average, so the statistics copied from the trained G do not belong to them; recomputing
    them is BigGAN's "standing statistics" (Brock et al. 2019, appendix C); docs/defaults.md has its measurements.
    """
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return G
    momenta, was_training = [m.momentum for m in norms], G.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: a cumulative average over every batch seen
    G.train()
    device = next(G.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    for _ in range(max(1, samples // batch)):
        G(torch.randn(batch, G.z_dim, generator=rng).to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return G.train(was_training)
