"""Sampling from a trained generator: needs only a checkpoint (or a run folder), never the data."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .images import float_to_uint8
from .models import build_generator
from .training.checkpoint import load_checkpoint, load_latest_valid
from .training.config import TrainConfig
from .training.ema import standing_statistics


def find_checkpoint(run_or_checkpoint: str | Path, which: str = "latest") -> tuple[Path, dict]:
    """Resolve a run folder (+ latest/best) or a checkpoint file to (path, loaded checkpoint)."""
    path = Path(run_or_checkpoint)
    if path.is_file():
        return path, load_checkpoint(path)
    if not path.is_dir():
        raise UserError(f"{path} is neither a run folder nor a checkpoint file")
    if which == "latest":
        found = load_latest_valid(path / "checkpoints")
        if found is None:
            raise UserError(f"{path} has no usable checkpoint (is it a gansmith run folder?)")
        return found
    if which == "best":
        best = path / "checkpoints" / "best.pt"
        if not best.is_file():
            raise UserError(f"{path} has no best.pt yet (it is written when training evaluates with --eval-every)")
        return best, load_checkpoint(best)
    return find_checkpoint(which)


def load_generator(run_or_checkpoint: str | Path, which: str = "latest", ema: bool = True,
                   device: str | torch.device = "cpu", standing: bool | None = None):
    """The generator of a run, in eval mode, and the run's TrainConfig. Uses the EMA weights when present, with
    batch-norm statistics recomputed for them if `standing` (None: as the run's config says) or else those
    copied from the trained G."""
    _, ckpt = find_checkpoint(run_or_checkpoint, which)
    cfg = TrainConfig.from_saved(ckpt["config"])
    G = build_generator(cfg)
    use_ema = ema and ckpt.get("G_ema") is not None
    G.load_state_dict(ckpt["G_ema"] if use_ema else ckpt["G"])
    G.to(device)
    if use_ema and (cfg.standing_stats if standing is None else standing):
        standing_statistics(G, cfg.batch)
    return G.eval(), cfg


def latents(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """The latent vectors a seed stands for: the same seed gives the same images on any machine."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate_images(G, n: int, seed: int = 0, batch: int = 64, device: str | torch.device = "cpu") -> np.ndarray:
    """n images as uint8 N x H x W x C."""
    if n < 1:
        raise UserError(f"the number of images must be at least 1, not {n}")
    return images_from_latents(G, latents(n, G.z_dim, seed), batch, device)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between latent vectors: a at t=0, b at t=1 (exactly), constant angular speed.
    Falls back to linear interpolation when a and b are (nearly) parallel."""
    cos = float(torch.dot(a.flatten().double(), b.flatten().double()) / (a.double().norm() * b.double().norm()))
    theta = math.acos(max(-1.0, min(1.0, cos)))
    if math.sin(theta) < 1e-6:
        return (1 - t) * a + t * b
    return (math.sin((1 - t) * theta) / math.sin(theta)) * a + (math.sin(t * theta) / math.sin(theta)) * b


def interpolation_latents(z_dim: int, seeds: list[int], frames_per_segment: int, per_frame: int = 1) -> torch.Tensor:
    """A looping walk: frames_per_segment latents from each seed's latent towards the next seed's, and from the
    last seed's back to the first, so the frame after the last one is the first one again. With per_frame > 1
    each frame is a batch (frame-major rows): seed s stands for `latents(per_frame, z_dim, s)`, the batch of
    `gansmith sample -n per_frame --seed s`, and row r walks on its own."""
    if len(seeds) < 2:
        raise UserError(f"a latent walk needs at least 2 seeds, got {len(seeds)}")
    if frames_per_segment < 1:
        raise UserError(f"the number of frames between seeds must be at least 1, not {frames_per_segment}")
    keys = [latents(per_frame, z_dim, seed) for seed in seeds]
    return torch.cat([torch.stack([slerp(a, b, k / frames_per_segment) for a, b in zip(keys[i], keys[(i + 1) % len(keys)])])
                      for i in range(len(keys)) for k in range(frames_per_segment)])


@torch.no_grad()
def images_from_latents(G, z: torch.Tensor, batch: int = 64, device: str | torch.device = "cpu") -> np.ndarray:
    """G's images for the latent vectors z, as uint8 N x H x W x C."""
    return np.concatenate([float_to_uint8(G(z[i:i + batch].to(device))) for i in range(0, len(z), batch)])


def interpolation_frames(G, seeds: list[int], frames_per_segment: int, batch: int = 64,
                         device: str | torch.device = "cpu") -> np.ndarray:
    """The images of `interpolation_latents`: len(seeds) * frames_per_segment uint8 N x H x W x C frames."""
    return images_from_latents(G, interpolation_latents(G.z_dim, seeds, frames_per_segment), batch, device)
