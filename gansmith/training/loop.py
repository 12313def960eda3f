"""`train(config)`: the training loop, from data to run folder.

Read top to bottom: set up (data, networks, optimizers, run folder, resume), then the loop (one
two-phase step per batch, and at intervals of images shown: log, sample, checkpoint), then the final
save. Ctrl-C or SIGTERM finish the current step, save a checkpoint and return.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..data import load_images
from ..errors import UserError
from ..images import float_to_uint8
from ..models import build_discriminator, build_generator
from .batches import Batches
from .checkpoint import list_step_checkpoints, load_latest_valid, prune_checkpoints, save_checkpoint, step_path
from .config import TrainConfig, shape_differences, validate
from .ema import make_ema, update_ema
from .run import RunFolder, crossed, log
from .signals import GracefulStop
from .step import STAT_NAMES, train_step

N_FIXED_SAMPLES = 64
DEFAULT_KIMG = 200  # the duration when neither --kimg nor --minutes is given


@dataclass
class TrainResult:
    run: Path
    step: int
    images_seen: int
    checkpoint: Path
    interrupted: bool


class Trainer:
    """Holds everything a run's state consists of; `state_dict`/`load_state_dict` are the checkpoint."""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        torch.manual_seed(cfg.seed)
        self.G = build_generator(cfg).to(device)
        self.D = build_discriminator(cfg).to(device)
        self.G_ema = make_ema(self.G) if cfg.ema > 0 else None
        betas = (cfg.beta1, cfg.beta2)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.g_lr, betas=betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.d_lr, betas=betas)
        self.rng = torch.Generator(device).manual_seed(cfg.seed + 1)  # latents of the training batches
        self.fixed_z = torch.randn(N_FIXED_SAMPLES, cfg.z_dim,
                                   generator=torch.Generator().manual_seed(cfg.seed)).to(device)
        self.step = self.images_seen = 0
        self.seconds = 0.0

    def sampling_generator(self):
        return self.G_ema if self.G_ema is not None else self.G

    def state_dict(self) -> dict:
        return {
            "config": self.cfg.to_dict(),
            "G": self.G.state_dict(), "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "step": self.step, "images_seen": self.images_seen, "seconds": self.seconds,
            "rng": {"train": self.rng.get_state(), "torch": torch.get_rng_state()},
        }

    def load_state_dict(self, ckpt: dict) -> None:
        try:
            self.G.load_state_dict(ckpt["G"])
            self.D.load_state_dict(ckpt["D"])
            if self.G_ema is not None:
                self.G_ema.load_state_dict(ckpt["G_ema"] if ckpt.get("G_ema") is not None else ckpt["G"])
            self.opt_G.load_state_dict(ckpt["opt_G"])
            self.opt_D.load_state_dict(ckpt["opt_D"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise UserError(f"the checkpoint does not fit this configuration: {str(e).splitlines()[0]}") from None
        # Options that do not change shapes (learning rates, betas) come from the config, not the file,
        # so a resumed run can be continued with different settings.
        apply_optimizer_settings(self.opt_G, self.cfg.g_lr, self.cfg)
        apply_optimizer_settings(self.opt_D, self.cfg.d_lr, self.cfg)
        self.step, self.images_seen, self.seconds = ckpt["step"], ckpt["images_seen"], ckpt["seconds"]
        self.rng.set_state(ckpt["rng"]["train"])
        torch.set_rng_state(ckpt["rng"]["torch"])

    @torch.no_grad()
    def fixed_samples(self):
        G = self.sampling_generator()
        was_training = G.training
        G.eval()
        images = float_to_uint8(G(self.fixed_z))
        G.train(was_training)
        return images


def apply_optimizer_settings(opt, lr: float, cfg: TrainConfig) -> None:
    for group in opt.param_groups:
        group["lr"], group["betas"] = lr, (cfg.beta1, cfg.beta2)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps: Apple's MPS is not available on this machine")
    return torch.device(name)


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    validate(config)
    run = RunFolder(config.out)
    latest = find_resume_point(run, resume)
    data = load_images(config.data, res=config.res, channels=config.channels, fit=config.fit, progress=progress)
    cfg = config.replace(res=data.res, channels=data.channels)
    if cfg.kimg is None and cfg.minutes is None:
        cfg = cfg.replace(kimg=DEFAULT_KIMG)
    if latest is not None:
        differing = shape_differences(latest[1]["config"], cfg.to_dict())
        if differing:
            raise UserError(f"cannot resume {run.path}: the model shape differs from the run's ({'; '.join(differing)})")

    trainer = Trainer(cfg, resolve_device(cfg.device))
    run.create()
    if latest is not None:
        trainer.load_state_dict(latest[1])
        run.truncate_metrics(trainer.step)
        log(f"resuming {run.path} from {latest[0].name} (step {trainer.step}, {trainer.images_seen / 1000:.1f} kimg)")
    run.write_config(cfg.to_dict(), data.summary())
    tb = run.tensorboard(purge_step=trainer.step if latest else None)
    try:
        interrupted = run_loop(trainer, Batches(data.x, cfg.batch, cfg.seed, trainer.device), run, tb, progress)
        checkpoint = save(trainer, run)
        run.save_sample_grid(trainer.fixed_samples(), trainer.step)
    finally:
        run.close()
    log(("interrupted: " if interrupted else "done: ")
        + f"{trainer.images_seen / 1000:.1f} kimg, checkpoint {checkpoint}")
    return TrainResult(run.path, trainer.step, trainer.images_seen, checkpoint, interrupted)


def find_resume_point(run: RunFolder, resume: bool):
    if not resume:
        if list_step_checkpoints(run.checkpoints):
            raise UserError(f"{run.path} already holds a run: pass --resume to continue it, or choose another --out")
        return None
    latest = load_latest_valid(run.checkpoints)
    if latest is None:
        raise UserError(f"nothing to resume in {run.path}: it has no usable checkpoint")
    return latest


def run_loop(t: Trainer, batches: Batches, run: RunFolder, tb, progress: bool) -> bool:
    """Train until the duration is reached or a stop signal arrives; return True if interrupted."""
    cfg = t.cfg
    target = int(cfg.kimg * 1000) if cfg.kimg is not None else None
    deadline = time.monotonic() + cfg.minutes * 60 if cfg.minutes is not None else None
    sums, n_sums = torch.zeros(len(STAT_NAMES), device=t.device), 0
    interval_start, interval_images = time.monotonic(), 0
    bar = tqdm(total=target, initial=t.images_seen if target else 0, unit="img", unit_scale=True,
               dynamic_ncols=True, disable=not progress, desc="training")
    with GracefulStop() as stop, bar:
        while not stop.requested:
            if target is not None and t.images_seen >= target:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            tick = time.monotonic()
            real = batches.get(t.step)
            z = torch.randn(real.shape[0], cfg.z_dim, device=t.device, generator=t.rng)
            stats = train_step(t.G, t.D, t.opt_G, t.opt_D, real, z, cfg.loss)
            if t.G_ema is not None:
                update_ema(t.G_ema, t.G, cfg.ema)
            before = t.images_seen
            t.step += 1
            t.images_seen += real.shape[0]
            t.seconds += time.monotonic() - tick
            sums += stats.as_tensor()
            n_sums += 1
            interval_images += real.shape[0]
            bar.update(real.shape[0])

            if crossed(before, t.images_seen, cfg.log_every):
                now = time.monotonic()
                record = log_record(t, sums / n_sums, interval_images / max(now - interval_start, 1e-9))
                run.append_metrics(record)
                for k, v in record.items():
                    if k not in ("step", "kimg"):
                        tb.add_scalar(k, v, t.step)
                bar.set_postfix(loss_d=f"{record['loss_d']:.3f}", loss_g=f"{record['loss_g']:.3f}",
                                d_real=f"{record['d_real']:.2f}", d_fake=f"{record['d_fake']:.2f}")
                sums.zero_()
                n_sums, interval_start, interval_images = 0, now, 0
            if crossed(before, t.images_seen, cfg.sample_every):
                images = t.fixed_samples()
                run.save_sample_grid(images, t.step)
                tb.add_images("samples", images[:16], t.step, dataformats="NHWC")
            if crossed(before, t.images_seen, cfg.checkpoint_every):
                save(t, run)
    return stop.requested


def log_record(t: Trainer, means: torch.Tensor, img_per_s: float) -> dict:
    record = {"step": t.step, "kimg": round(t.images_seen / 1000, 3), "seconds": round(t.seconds, 2)}
    record.update({k: float(v) for k, v in zip(STAT_NAMES, means.tolist())})
    record.update({"lr_g": t.opt_G.param_groups[0]["lr"], "lr_d": t.opt_D.param_groups[0]["lr"],
                   "img_per_s": round(img_per_s, 1)})
    return record


def save(t: Trainer, run: RunFolder) -> Path:
    path = step_path(run.checkpoints, t.step)
    save_checkpoint(path, t.state_dict())
    prune_checkpoints(run.checkpoints, t.cfg.keep)
    return path
