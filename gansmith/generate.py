"""Sampling from a trained generator: needs only a checkpoint (or a run folder), never the data."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .errors import UserError
from .images import float_to_uint8, make_grid
from .models import build_generator
from .models.stylegan import StyleGenerator, style_mix
from .seeds import parse_seeds  # noqa: F401  (part of this module's API: seed lists)
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
def image_batches(G, n: int, seed: int = 0, batch: int = 64, device: str | torch.device = "cpu",
                  truncation: float = 1.0) -> Iterator[np.ndarray]:
    """generate_images(G, n, seed) as uint8 N x H x W x C batches, one at a time, for any n (truncation psi as
    `images_truncated` describes)."""
    if n < 1:
        raise UserError(f"the number of images must be at least 1, not {n}")
    for z in latent_batches(n, G.z_dim, seed, batch):
        yield float_to_uint8(images_truncated(G, z.to(device), truncation))


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


def images_truncated(G, z: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
    """G's images for z with the truncation trick: psi < 1 trades variety for typical images. A StyleGAN
    generator pulls w towards its average w (Karras et al. 2019); any other generator scales z by psi, i.e.
    pulls it towards z = 0, the mode of the latent distribution (Brock et al. 2019 resample instead, which
    changes the image of a seed). psi = 1 is plain sampling."""
    if isinstance(G, StyleGenerator):
        return G(z, truncation=truncation)
    return G(z if truncation == 1 else z * truncation)



@torch.no_grad()
def images_from_latents(G, z: torch.Tensor, batch: int = 64, device: str | torch.device = "cpu",
                        truncation: float = 1.0) -> np.ndarray:
    """G's images for the latent vectors z, as uint8 N x H x W x C."""
    return np.concatenate([float_to_uint8(images_truncated(G, z[i:i + batch].to(device), truncation))
                           for i in range(0, len(z), batch)])


def seed_latents(z_dim: int, seeds: list[int]) -> torch.Tensor:
    """One latent per seed: seed s stands for torch.randn(1, z_dim, generator=torch.Generator().manual_seed(s))
    (CPU generator), the keyframe of seed s in `walk_latents` too."""
    return torch.cat([latents(1, z_dim, seed) for seed in seeds])


def generate_from_seeds(G, seeds: list[int], truncation: float = 1.0, batch: int = 64,
                        device: str | torch.device = "cpu") -> np.ndarray:
    """One image per seed (uint8 N x H x W x C), each from the latent `seed_latents` documents, with
    truncation psi as `images_truncated` describes. G should be in eval mode, as `load_generator` returns it."""
    if not seeds:
        raise UserError("no seeds given")
    if not math.isfinite(truncation):
        raise UserError(f"truncation must be a finite number, not {truncation}")
    return images_from_latents(G, seed_latents(G.z_dim, seeds), batch, device, truncation)


@torch.no_grad()
def style_mixing_grid(G, row_seeds: list[int], col_seeds: list[int], crossover: int, truncation: float = 1.0,
                      device: str | torch.device = "cpu") -> np.ndarray:
    """The style-mixing figure of the StyleGAN paper as one uint8 H x W x C image: the column seeds' images
    along the top, the row seeds' images down the left, and in cell (r, c) the image whose coarse styles
    (ws layers before `crossover`) come from row seed r and whose fine styles come from column seed c."""
    if not isinstance(G, StyleGenerator):
        raise UserError("style mixing needs a StyleGAN generator (--arch stylegan)")
    if not row_seeds or not col_seeds:
        raise UserError("style mixing needs at least one row seed and one column seed")
    if not 1 <= crossover < G.num_ws:
        raise UserError(f"the crossover layer must be between 1 and {G.num_ws - 1} for this generator, "
                        f"not {crossover}")
    rows = G.mapping(seed_latents(G.z_dim, row_seeds).to(device), truncation)
    cols = G.mapping(seed_latents(G.z_dim, col_seeds).to(device), truncation)
    n_rows, n_cols = len(rows), len(cols)
    mixed = style_mix(rows.repeat_interleave(n_cols, dim=0), cols.repeat(n_rows, 1, 1), crossover)
    images = [float_to_uint8(G.synthesis(ws, "const")) for ws in (rows, cols, mixed)]
    row_images, col_images, cells = images
    blank = np.full_like(col_images[:1], 255)
    tiles = [blank, col_images]
    for r in range(n_rows):
        tiles += [row_images[r:r + 1], cells[r * n_cols:(r + 1) * n_cols]]
    return make_grid(np.concatenate(tiles), nrow=n_cols + 1)


def parse_keyframes(text: str) -> list:
    """'0-2,me.npz,7' -> [0, 1, 2, Path('me.npz'), 7]: seeds (ranges allowed) and latents saved by `gansmith project`."""
    keys = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        keys += [Path(part)] if part.lower().endswith(".npz") else parse_seeds(part)
    return keys


def keyframe_latent(G, key, per_frame: int = 1) -> torch.Tensor:
    """A walk's keyframe in the space the walk runs in: ws (per_frame x num_ws x w_dim) for StyleGAN, whose W is
    where images change smoothly, else z (per_frame x z_dim). A seed s stands for `latents(per_frame, z_dim, s)`,
    the batch of `gansmith sample -n per_frame --seed s`; a path for one latent saved by `gansmith project` (its
    noise maps are not used: the walk renders with G's fixed noise)."""
    style = isinstance(G, StyleGenerator)
    device = next(G.parameters()).device
    if not isinstance(key, Path):
        z = latents(per_frame, G.z_dim, key).to(device)
        return G.mapping(z) if style else z
    if per_frame > 1:
        raise UserError(f"a grid of walks (--tiles) starts from seeds, not from a projected latent ({key})")
    saved = load_projection(key)
    if style != (saved["space"] in ("w", "w+")) or saved["latent"].shape[-1] != (G.w_dim if style else G.z_dim):
        raise UserError(f"{key} is a latent of another model ({saved['space']}, size {saved['latent'].shape[-1]})")
    return saved["latent"].to(device)


def load_projection(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {"space": str(f["space"]), "latent": torch.from_numpy(f["latent"]).float()}
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"{path} is not a latent saved by `gansmith project` ({e})") from None


@torch.no_grad()
def walk_latents(G, keys: list, frames_per_segment: int, per_frame: int = 1) -> torch.Tensor:
    """A looping walk through keyframes (seeds and projected latents; see `parse_keyframes`): frames_per_segment
    frames from each keyframe towards the next, and from the last back to the first, so the frame after the last
    is the first again. Spherical interpolation in z, linear in StyleGAN's W (ws). With per_frame > 1 each frame
    is a batch (frame-major rows) and row r walks on its own."""
    if len(keys) < 2:
        raise UserError(f"a latent walk needs at least 2 seeds (or projected latents), got {len(keys)}")
    if frames_per_segment < 1:
        raise UserError(f"the number of frames between keyframes must be at least 1, not {frames_per_segment}")
    points = [keyframe_latent(G, key, per_frame) for key in keys]
    mix = torch.lerp if isinstance(G, StyleGenerator) else slerp
    return torch.cat([torch.stack([mix(a, b, k / frames_per_segment) for a, b in zip(points[i], points[(i + 1) % len(points)])])
                      for i in range(len(points)) for k in range(frames_per_segment)])


@torch.no_grad()
def walk_frames(G, keys: list, frames_per_segment: int, per_frame: int = 1, batch: int = 64) -> np.ndarray:
    """The images of `walk_latents`, uint8 N x H x W x C (frame-major)."""
    check_memory(len(keys) * frames_per_segment * per_frame, G.res, G.channels, "frames")
    path = walk_latents(G, keys, frames_per_segment, per_frame)
    render = (lambda ws: G.synthesis(ws, "const")) if isinstance(G, StyleGenerator) else G
    return np.concatenate([float_to_uint8(render(path[i:i + batch])) for i in range(0, len(path), batch)])
