"""`train(config)`: the training loop, from data to run folder.

Read top to bottom: the `Trainer` (networks, optimizers, policies, and one training step), then
`train` (data, resume, run folder), then `run_loop` (steps, and at intervals of images shown: log,
sample, checkpoint). Ctrl-C or SIGTERM finish the current step, save a checkpoint and return.
"""
from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..data import load_images
from ..doctor import Doctor, sample_diversity
from ..errors import UserError
from ..images import float_to_uint8
from ..losses import decision_threshold
from ..models import build_discriminator, build_generator, progressive
from .augment import parse_policy
from .batches import Batches
from .checkpoint import (list_step_checkpoints, load_latest_valid, prune_checkpoints, remove_stale_temporaries,
                         save_checkpoint, step_path)
from .config import TrainConfig, resolve, shape_differences, validate
from .ema import ema_decay, make_ema, standing_statistics, update_ema
from .lr import decay_factor
from .policies import BalancePolicy, DivergenceGuard, event
from .run import ReadOnlyRun, RunFolder, crossed, log
from .signals import GracefulStop
from . import distributed
from .distributed import Dist
from .step import StepOptions, adam, discriminator_phase, generator_phase

N_FIXED_SAMPLES = 64
REPORT_MIN_SECONDS = 60  # the HTML report costs a second or two to draw: refresh it at most this often
DEFAULT_KIMG = 200  # the duration when neither --kimg nor --minutes is given
STAT_NAMES = ("loss_d", "loss_g", "d_real", "d_fake", "d_acc", "d_grad", "g_grad")


@dataclass
class TrainResult:
    run: Path
    step: int
    images_seen: int
    checkpoint: Path
    interrupted: bool


class Trainer:
    """A run's whole state, and one training step. `state_dict`/`load_state_dict` are the checkpoint."""

    def __init__(self, cfg: TrainConfig, device: torch.device, ranks: Dist | None = None):
        self.cfg, self.device, self.ranks = cfg, device, ranks or Dist()
        self.rank_slice = slice(self.ranks.rank * cfg.batch // self.ranks.world,
                                (self.ranks.rank + 1) * cfg.batch // self.ranks.world)
        torch.manual_seed(cfg.seed)
        # Channels-last (NHWC) convolutions: 1.1-1.2x faster steps at 64 px on CPU (oneDNN; DCGAN, progressive
        # and MSG), no change at 28 px (benchmarks/results/throughput.md); real batches come channels-last too.
        self.G = build_generator(cfg).to(device, memory_format=torch.channels_last)
        self.D = build_discriminator(cfg).to(device, memory_format=torch.channels_last)
        self.G_ema = make_ema(self.G) if cfg.ema > 0 else None
        self.G_params = list(self.G.parameters())
        self._samples = (None, None)  # (step, fixed samples): logging and sample grids share one forward
        betas = (cfg.beta1, cfg.beta2)
        self.opt_G = adam(self.G.parameters(), cfg.g_lr, betas, device)
        self.opt_D = adam(self.D.parameters(), cfg.d_lr, betas, device)
        self.rng = torch.Generator(device).manual_seed(cfg.seed + 1)  # latents of the (global) batches
        self.aug_rng = torch.Generator(device)  # augmentation, noise, penalties: reseeded every step
        self.fixed_z = torch.randn(N_FIXED_SAMPLES, cfg.z_dim,
                                   generator=torch.Generator().manual_seed(cfg.seed)).to(device)
        self.opts = StepOptions(loss=cfg.loss, real_label=1.0 - cfg.label_smooth, r1_gamma=cfg.r1,
                                r1_every=cfg.r1_every, gp_weight=cfg.gp_weight, augment=parse_policy(cfg.augment),
                                sync_gradients=self.ranks.sync_gradients, amp_dtype=amp_dtype(cfg.amp, device),
                                device_type=device.type)
        self.balance = BalancePolicy(cfg.loss) if cfg.balance else None
        self.guard = DivergenceGuard()
        self.doctor = Doctor(cfg.loss)
        self.step = self.images_seen = self.batches_drawn = 0
        self.seconds, self.lr_scale = 0.0, 1.0
        self.progress = 0.0  # fraction of the run's duration done (kimg or minutes), for annealing
        self.events: list[dict] = []
        self.pending_eval: dict = {}
        self.best_fid = float("inf")

    # --- one step ------------------------------------------------------------------------------------
    def train_step(self, batches: Batches) -> torch.Tensor:
        """D phase(s) then G phase; returns the step's numbers in STAT_NAMES order."""
        cfg, opts = self.cfg, self.opts
        opts.noise_std = cfg.instance_noise * max(0.0, 1.0 - self.progress)
        if cfg.lr_decay != "none":
            self.apply_learning_rates()
        self.apply_growth()
        n_d = self.balance.d_updates(cfg.d_steps) if self.balance else cfg.d_steps
        # a function of (seed, step, rank): resumable with any number of ranks, nothing to save
        self.aug_rng.manual_seed((cfg.seed * 1_000_003 + self.step) * 1_009 + self.ranks.rank)
        with opts.autocast():
            fake = self.G(self.latents())
        for i in range(max(n_d, 1)):
            real = batches.get(self.batches_drawn)
            self.batches_drawn += 1
            self.images_seen += cfg.batch  # the global batch, whatever the number of ranks
            if i == 0:
                d_fake_batch = fake.detach()
            else:
                with torch.no_grad(), opts.autocast():
                    d_fake_batch = self.G(self.latents())
            d = discriminator_phase(self.D, self.opt_D, real, d_fake_batch, opts, self.aug_rng, self.step,
                                    update=n_d > 0)
        g = generator_phase(self.D, self.opt_G, self.G_params, fake, opts, self.aug_rng)
        if self.G_ema is not None:
            update_ema(self.G_ema, self.G, ema_decay(cfg.ema, self.step))
        self.step += 1
        stats = torch.stack([d.loss, g.loss, *self.d_outputs(d.real_out, d.fake_out), d.grad_norm, g.grad_norm])
        return self.ranks.average(stats)  # every rank's policies see the same numbers

    def apply_growth(self) -> None:
        """Progressive growing: the stage and fade-in alpha are a function of images shown (so resuming
        mid-fade is exact)."""
        if self.cfg.arch != "progressive":
            return
        stage, alpha = progressive.schedule(self.images_seen, self.cfg.phase_kimg, self.G.n_stages)
        for net in (self.G, self.D, self.G_ema):
            if net is not None:
                net.set_growth(stage, alpha)

    def latents(self) -> torch.Tensor:
        """This rank's slice of a global batch of latents (every rank draws the same global batch)."""
        z = torch.randn(self.cfg.batch, self.cfg.z_dim, device=self.device, generator=self.rng)
        return z[self.rank_slice]

    def d_outputs(self, real_out, fake_out):
        """D's mean verdicts (probabilities for ns, raw scores otherwise) and its accuracy."""
        thr = decision_threshold(self.cfg.loss)
        acc = ((real_out > thr).float().mean() + (fake_out < thr).float().mean()) / 2
        if self.cfg.loss == "ns":
            real_out, fake_out = torch.sigmoid(real_out), torch.sigmoid(fake_out)
        return real_out.mean(), fake_out.mean(), acc

    # --- policies ------------------------------------------------------------------------------------
    def observe(self, values: dict, run: RunFolder) -> None:
        """Feed a step's numbers to the policies; roll back if the step diverged."""
        reason = self.guard.check({k: values[k] for k in ("loss_d", "loss_g")},
                                  {k: values[k] for k in ("d_grad", "g_grad")})
        if reason:
            self.rollback(run, reason)
            return
        if self.balance:
            self.balance.observe(values["loss_d"], self.step)
            self.events += self.balance.events
            self.balance.events = []

    def rollback(self, run: RunFolder, reason: str) -> None:
        """Return to the last good checkpoint with halved learning rates (at most 3 times)."""
        rollbacks = self.guard.rollbacks + 1
        if rollbacks > self.guard.max_rollbacks:
            raise UserError(f"training diverged ({reason}) {self.guard.max_rollbacks} times, even after lowering "
                            "the learning rates; try lower --g-lr/--d-lr, --sn or --loss hinge")
        found = self.ranks.broadcast(load_latest_valid(run.checkpoints) if self.ranks.main else None)
        if found is None:
            raise UserError(f"training diverged ({reason}) and no checkpoint is left to roll back to")
        step, lr_scale = self.step, self.lr_scale * 0.5
        self.load_state_dict(found[1])
        run.truncate_metrics(self.step)  # the steps after the checkpoint will be logged again
        self.guard.rollbacks, self.lr_scale = rollbacks, lr_scale
        self.apply_learning_rates()
        self.events.append(event("divergence", "error",
                                 f"step {step}: {reason}; rolled back to step {self.step} and halved the learning "
                                 f"rates (rollback {rollbacks} of {self.guard.max_rollbacks})",
                                 {"step": step, "reason": reason, "lr_scale": lr_scale}, "lower the learning rates"))

    def apply_learning_rates(self) -> None:
        """Set the optimizers from the config (times the divergence scale and the decay), so a resumed run can
        change them."""
        scale = self.lr_scale * decay_factor(self.cfg.lr_decay, self.progress)
        for opt, lr in ((self.opt_G, self.cfg.g_lr), (self.opt_D, self.cfg.d_lr)):
            for group in opt.param_groups:
                group["lr"], group["betas"] = lr * scale, (self.cfg.beta1, self.cfg.beta2)

    def apply_fix(self, changes: dict) -> None:
        """Apply a doctor's remedy: new option values that do not change the networks' shapes."""
        self.cfg = self.cfg.replace(**changes)
        self.opts.augment = parse_policy(self.cfg.augment)
        if self.cfg.balance and self.balance is None:
            self.balance = BalancePolicy(self.cfg.loss)
        self.apply_learning_rates()

    # --- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "config": self.cfg.to_dict(),
            "G": self.G.state_dict(), "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "step": self.step, "images_seen": self.images_seen, "seconds": self.seconds,
            "rng": {"train": self.rng.get_state(), "torch": torch.get_rng_state()},
            "state": {"batches_drawn": self.batches_drawn, "lr_scale": self.lr_scale,
                      "balance": self.balance.state_dict() if self.balance else None,
                      "guard": self.guard.state_dict(), "doctor": self.doctor.state_dict(),
                      "best_fid": self.best_fid},
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
        self.step, self.images_seen, self.seconds = ckpt["step"], ckpt["images_seen"], ckpt["seconds"]
        self._samples = (None, None)
        self.rng.set_state(ckpt["rng"]["train"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        state = ckpt["state"]
        self.batches_drawn, self.lr_scale = state["batches_drawn"], state["lr_scale"]
        if self.balance and state["balance"]:
            self.balance.load_state_dict(state["balance"])
        self.guard.load_state_dict(state["guard"])
        self.doctor.load_state_dict(state["doctor"])
        self.best_fid = state["best_fid"]
        self.apply_learning_rates()

    # --- samples -------------------------------------------------------------------------------------
    def sampling_generator(self):
        return self.G_ema if self.G_ema is not None else self.G

    def evaluation_generator(self):
        """What `gansmith eval` would load from a checkpoint now, bit for bit: a copy of the sampling generator in the
        default memory format, with standing statistics if the config asks for them."""
        G = copy.deepcopy(self.sampling_generator()).to(memory_format=torch.contiguous_format)
        return standing_statistics(G, self.cfg.batch) if self.G_ema is not None and self.cfg.standing_stats else G

    @torch.no_grad()
    def fixed_samples(self) -> torch.Tensor:
        """The fixed latent batch through the sampling generator, float in [-1, 1] (computed once per step)."""
        if self._samples[0] != self.step:
            G = self.sampling_generator()
            was_training = G.training
            G.eval()
            self._samples = (self.step, G(self.fixed_z))
            G.train(was_training)
        return self._samples[1]


def amp_dtype(amp: bool, device: torch.device) -> torch.dtype | None:
    """bf16 autocast where the hardware computes in bf16: GPUs that support it, and CPUs with AVX512-BF16
    (measured there in 10-minute runs: 1.26x the steps at 64 px, 1.13-1.17x at 28 px, FID as good or better;
    benchmarks/results/defaults_sweep.md round 8). On other CPUs bf16 is slower (measured on an AVX2 CPU), so
    --amp is off there."""
    if not amp:
        return None
    if (device.type == "cuda" and torch.cuda.is_bf16_supported()) or amp_by_default(device):
        return torch.bfloat16
    warnings.warn(f"--amp has no effect on this {device.type}: it needs native bf16 (a CUDA GPU that supports it, "
                  "or a CPU with AVX512-BF16); training in float32")
    return None


def amp_by_default(device: torch.device) -> bool:
    """bf16 unless asked otherwise only where it was measured to pay: CPUs with AVX512-BF16. GPUs are unmeasured
    here, so they train in float32 unless --amp is given."""
    return device.type == "cpu" and cpu_has_bf16()


def cpu_has_bf16() -> bool:
    # torch's own check (private, stable in the pinned torch); get_cpu_capability() says only "AVX512"
    return torch.cpu._is_avx512_bf16_supported()


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
    ranks, device = distributed.setup(config.device)
    try:
        return train_on_ranks(config.replace(device=device), ranks, resume, progress and ranks.main)
    finally:
        distributed.shutdown(ranks)


def train_on_ranks(config: TrainConfig, ranks: Dist, resume: bool, progress: bool) -> TrainResult:
    """The whole run on this process (one of `ranks.world`); only rank 0 writes to the run folder."""
    run = RunFolder(config.out) if ranks.main else ReadOnlyRun(config.out)
    latest = ranks.broadcast(find_resume_point(run, resume) if ranks.main else None)
    data = load_images(config.data, res=config.res, channels=config.channels, fit=config.fit, progress=progress)
    cfg = resolve(config, data.res, data.channels)
    if ranks.active and cfg.batch % ranks.world:
        raise UserError(f"--batch {cfg.batch} (the global batch) must be divisible by the {ranks.world} ranks")
    if ranks.active and (cfg.batch // ranks.world) % cfg.pack:
        raise UserError(f"each rank's share of --batch {cfg.batch} must be a multiple of --pack {cfg.pack}")
    if cfg.kimg is None and cfg.minutes is None:
        cfg = cfg.replace(kimg=DEFAULT_KIMG)
    if latest is not None:
        differing = shape_differences(latest[1]["config"], cfg.to_dict())
        if differing:
            raise UserError(f"cannot resume {run.path}: the model shape differs from the run's ({'; '.join(differing)})")

    device = resolve_device(cfg.device)
    if cfg.amp is None:
        cfg = cfg.replace(amp=amp_by_default(device))
    trainer = Trainer(cfg, device, ranks)
    run.create()
    if latest is not None:
        trainer.load_state_dict(latest[1])
        run.truncate_metrics(trainer.step)
        if ranks.main:
            log(f"resuming {run.path} from {latest[0].name} (step {trainer.step}, "
                f"{trainer.images_seen / 1000:.1f} kimg)")
    else:
        save(trainer, run)  # step 0: a point to roll back to if the very first steps diverge
    run.write_config({**cfg.to_dict(), "ranks": ranks.world}, data.summary())
    batches = Batches(data, cfg.batch, cfg.seed, trainer.device, ranks.rank, ranks.world)
    trainer.doctor.set_real_diversity(sample_diversity(batches.get_fixed(N_FIXED_SAMPLES)))
    tb = run.tensorboard(purge_step=trainer.step if latest else None)
    try:
        interrupted = run_loop(trainer, batches, run, tb, progress)
        checkpoint = save(trainer, run)
        run.save_sample_grid(float_to_uint8(trainer.fixed_samples()), trainer.step)
    finally:
        run.close()
    if cfg.report and ranks.main:
        refresh_report(run.path)
    if ranks.main:
        log(("interrupted: " if interrupted else "done: ")
            + f"{trainer.images_seen / 1000:.1f} kimg, checkpoint {checkpoint}")
    return TrainResult(run.path, trainer.step, trainer.images_seen, checkpoint, interrupted)


def refresh_report(path: Path) -> None:
    from ..report import refresh_report as refresh  # imported late: the report reads the run folder module
    refresh(path)


def find_resume_point(run: RunFolder, resume: bool):
    if not resume:
        if list_step_checkpoints(run.checkpoints):
            raise UserError(f"{run.path} already holds a run: pass --resume to continue it, or choose another --out")
        return None
    remove_stale_temporaries(run.checkpoints)
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
    last_report = time.monotonic()
    bar = tqdm(total=target, initial=t.images_seen if target else 0, unit="img", unit_scale=True,
               dynamic_ncols=True, disable=not progress, desc="training")
    interrupted = False
    with GracefulStop() as stop, bar:
        while True:
            if target is not None and t.images_seen >= target:
                break
            time_up = deadline is not None and time.monotonic() >= deadline
            if t.ranks.any(stop.requested or time_up, t.device):  # all ranks stop at the same step
                interrupted = t.ranks.any(stop.requested, t.device)
                break
            tick, before = time.monotonic(), t.images_seen
            t.progress = max(t.images_seen / target if target else 0.0,
                             1 - (deadline - tick) / (cfg.minutes * 60) if deadline is not None else 0.0)
            stats = t.train_step(batches)
            values = dict(zip(STAT_NAMES, stats.tolist()))
            t.observe(values, run)
            if t.images_seen <= before:  # rolled back: start the interval afresh
                sums.zero_()
                n_sums, interval_start, interval_images = 0, time.monotonic(), 0
                bar.reset(total=target)
                bar.update(t.images_seen if target else 0)
                continue
            t.seconds += time.monotonic() - tick
            sums += stats
            n_sums += 1
            interval_images += t.images_seen - before
            bar.update(t.images_seen - before)

            if cfg.eval_every and crossed(before, t.images_seen, cfg.eval_every) and t.ranks.main:
                evaluate_during_training(t, batches.data, run)
            if crossed(before, t.images_seen, cfg.log_every):
                now = time.monotonic()
                record = log_record(t, sums / n_sums, interval_images / max(now - interval_start, 1e-9))
                run.append_metrics(record)
                for k, v in record.items():
                    if isinstance(v, (int, float)) and k not in ("step", "kimg"):
                        tb.add_scalar(k, v, t.step)
                for e in record.get("events", []) if t.ranks.main else []:
                    log(f"[{e['severity']}] {e['message']}" + (f" -> {e['remedy']}" if e.get("remedy") else ""))
                bar.set_postfix(loss_d=f"{record['loss_d']:.3f}", loss_g=f"{record['loss_g']:.3f}",
                                d_real=f"{record['d_real']:.2f}", d_fake=f"{record['d_fake']:.2f}")
                sums.zero_()
                n_sums, interval_start, interval_images = 0, now, 0
            if crossed(before, t.images_seen, cfg.sample_every):
                images = float_to_uint8(t.fixed_samples())
                run.save_sample_grid(images, t.step)
                tb.add_images("samples", images[:16], t.step, dataformats="NHWC")
                if cfg.report and t.ranks.main and time.monotonic() - last_report >= REPORT_MIN_SECONDS:
                    refresh_report(run.path)
                    last_report = time.monotonic()
            if crossed(before, t.images_seen, cfg.checkpoint_every):
                save(t, run)
    return interrupted


def log_record(t: Trainer, means: torch.Tensor, img_per_s: float) -> dict:
    """One line of metrics.jsonl: the interval's mean numbers, diversity, and what the policies and doctor did."""
    record = {"step": t.step, "kimg": round(t.images_seen / 1000, 3), "seconds": round(t.seconds, 2)}
    record.update({k: float(v) for k, v in zip(STAT_NAMES, means.tolist())})
    record.update({"lr_g": t.opt_G.param_groups[0]["lr"], "lr_d": t.opt_D.param_groups[0]["lr"],
                   "img_per_s": round(img_per_s, 1)})
    if t.cfg.arch == "progressive":
        record.update({"stage": int(t.G.stage), "alpha": round(float(t.G.alpha), 4),
                       "current_res": t.G.stage_res(int(t.G.stage))})
    record.update(t.doctor.measure(t.fixed_samples()))
    if t.balance:
        record["balance"] = t.balance.take_interval_counts()
    record.update(t.pending_eval)
    t.pending_eval = {}
    findings = t.ranks.broadcast(t.doctor.examine(record, t.cfg))  # rank 0 decides for all
    if t.cfg.auto_fix:
        for f in findings:
            if f.get("fix"):
                t.apply_fix(f["fix"])
                f["applied"] = True
    events = t.events + findings
    t.events = []
    if events:
        record["events"] = events
    return record


EVAL_SEED = 2**31 - 1  # generated images for evaluation come from their own fixed seed


def evaluate_generator(G, data, n: int, device="cpu") -> dict:
    """FID and KID of n images from G (its own fixed seed) against n images of the data."""
    import warnings
    from ..generate import generate_images
    from ..metrics import evaluate
    was_training = G.training
    G.eval()
    fake = generate_images(G, n, seed=EVAL_SEED, device=device)
    G.train(was_training)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small-n FID warning is for one-off evaluations; KID is logged beside it
        return evaluate(data, fake, ("fid", "kid"), n=n)


def evaluate_during_training(t: Trainer, data, run: RunFolder) -> None:
    """FID/KID of the sampling generator now; keep checkpoints/best.pt by FID (DCGAN often gets worse late)."""
    result = evaluate_generator(t.evaluation_generator(), data, t.cfg.eval_n, t.device)
    t.pending_eval = {k: result[k] for k in ("fid", "kid", "kid_std")}
    log(f"step {t.step}: FID {result['fid']:.2f}, KID {result['kid']:.4f} ± {result['kid_std']:.4f}")
    if result["fid"] < t.best_fid:
        t.best_fid = result["fid"]
        save_checkpoint(run.checkpoints / "best.pt", t.state_dict())


def save(t: Trainer, run: RunFolder) -> Path:
    path = step_path(run.checkpoints, t.step)
    if t.ranks.main:
        save_checkpoint(path, t.state_dict())
        prune_checkpoints(run.checkpoints, t.cfg.keep)
    return path
