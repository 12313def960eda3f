"""Sampling from a trained generator: needs only a checkpoint (or a run folder), never the data."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .errors import UserError
from .images import float_to_uint8
from .models import build_generator
from .system import available_memory
from .training.checkpoint import load_latest_valid, load_usable
from .training.config import TrainConfig
from .training.run import RunFolder
from .training.ema import standing_statistics


def find_checkpoint(run_or_checkpoint: str | Path, which: str = "latest") -> tuple[Path, dict]:
    """Resolve a run folder (+ latest/best) or a checkpoint file to (path, loaded checkpoint)."""
    path = Path(run_or_checkpoint)
    if path.is_file():
        return path, load_usable(path)
    if not path.is_dir():
        raise UserError(f"{path} is neither a run folder nor a checkpoint file")
    run = RunFolder(path)
    if which == "latest":
        found = load_latest_valid(run.checkpoints, like=run.saved_config())
        if found is None:
            raise UserError(f"{path} has no usable checkpoint (is it a gansmith run folder?)")
        return found
    if which == "best":
        best = path / "checkpoints" / "best.pt"
        if not best.is_file():
            raise UserError(f"{path} has no best.pt yet (it is written when training evaluates with --eval-every)")
        return best, load_usable(best, like=run.saved_config())
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


def latent_batches(n: int, z_dim: int, seed: int, batch: int = 64) -> Iterator[torch.Tensor]:
    """The rows of latents(n, z_dim, seed), about `batch` at a time, so memory stays flat for any n.

    They equal the single draw because torch's CPU normal sampler transforms values in blocks of 16 and redraws
    the last 16 values of a draw that does not end on a block: every batch but the last is a whole number of
    blocks (a multiple of 16 rows), and the last holds at least 16 values (else it joins the one before)."""
    rows = -(-batch // 16) * 16
    generator = torch.Generator().manual_seed(seed)
    start = 0
    while start < n:
        take = min(rows, n - start)
        if 0 < (n - start - take) * z_dim < 16:
            take = n - start
        yield torch.randn(take, z_dim, generator=generator)
        start += take


def check_memory(n: int, res: int, channels: int, what: str = "images") -> None:
    """Refuse to hold n uint8 images in memory when they would not fit (say so before trying)."""
    needed, available = n * res * res * channels, available_memory()
    if available is not None and needed > available // 2:
        raise UserError(f"{n} {what} of {res} x {res} x {channels} need {needed / 2**30:.1f} GiB of memory, "
                        f"{available / 2**30:.1f} GiB is available: ask for fewer")


@torch.no_grad()
def image_batches(G, n: int, seed: int = 0, batch: int = 64,
                  device: str | torch.device = "cpu") -> Iterator[np.ndarray]:
    """generate_images(G, n, seed) as uint8 N x H x W x C batches, one at a time, for any n."""
    if n < 1:
        raise UserError(f"the number of images must be at least 1, not {n}")
    for z in latent_batches(n, G.z_dim, seed, batch):
        yield float_to_uint8(G(z.to(device)))


def generate_images(G, n: int, seed: int = 0, batch: int = 64, device: str | torch.device = "cpu") -> np.ndarray:
    """n images as uint8 N x H x W x C."""
    check_memory(n, G.res, G.channels)
    return np.concatenate(list(image_batches(G, n, seed, batch, device)))


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between latent vectors: a at t=0, b at t=1 (exactly), constant angular speed.
    Falls back to linear interpolation when a and b are (nearly) parallel."""
    cos = float(torch.dot(a.flatten().double(), b.flatten().double()) / (a.double().norm() * b.double().norm()))
    theta = math.acos(max(-1.0, min(1.0, cos)))
    if math.sin(theta) < 1e-6:
        return (1 - t) * a + t * b
    return (math.sin((1 - t) * theta) / math.sin(theta)) * a + (math.sin(t * theta) / math.sin(theta)) * b


def interpolation_latents(z_dim: int, seeds: list[int], frames_per_segment: int) -> torch.Tensor:
    """A looping walk: frames_per_segment latents from each seed's latent towards the next seed's, and from the
    last seed's back to the first, so the frame after the last one is the first one again."""
    if len(seeds) < 2:
        raise UserError(f"a latent walk needs at least 2 seeds, got {len(seeds)}")
    if frames_per_segment < 1:
        raise UserError(f"the number of frames between seeds must be at least 1, not {frames_per_segment}")
    keys = [latents(1, z_dim, seed)[0] for seed in seeds]
    return torch.stack([slerp(keys[i], keys[(i + 1) % len(keys)], k / frames_per_segment)
                        for i in range(len(keys)) for k in range(frames_per_segment)])


@torch.no_grad()
def images_from_latents(G, z: torch.Tensor, batch: int = 64, device: str | torch.device = "cpu") -> np.ndarray:
    """G's images for the latent vectors z, as uint8 N x H x W x C."""
    return np.concatenate([float_to_uint8(G(z[i:i + batch].to(device))) for i in range(0, len(z), batch)])


def interpolation_frames(G, seeds: list[int], frames_per_segment: int, batch: int = 64,
                         device: str | torch.device = "cpu") -> np.ndarray:
    """The images of `interpolation_latents`: len(seeds) * frames_per_segment uint8 N x H x W x C frames."""
    check_memory(len(seeds) * frames_per_segment, G.res, G.channels, "frames")
    return images_from_latents(G, interpolation_latents(G.z_dim, seeds, frames_per_segment), batch, device)
