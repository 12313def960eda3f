"""The `Trainer`: a run's networks, optimizers, policies and run state, and one training step.

It takes a frozen, resolved config (config.py) and never changes it. What changes during a run lives here as
state that every checkpoint carries: counters, RNG states, the balance policy, the divergence guard, the doctor
and the adjustments (adjustments.py). `state_dict`/`load_state_dict` are the checkpoint.
"""
from __future__ import annotations

import copy

import torch

from ..doctor import Doctor
from ..errors import UserError
from ..events import event
from ..losses import LOSSES
from ..models import ARCHITECTURES, build_discriminator, build_generator
from ..system import amp_dtype
from .adjustments import Adjustments
from .augment import parse_policy
from .batches import Batches, stream_seed
from .config import TrainConfig
from .distributed import Dist, rank_slice
from .ema import ema_decay, make_ema, standing_statistics, update_ema
from .lr import decay_factor
from .policies import ROLLBACK_LR_FACTOR, BalancePolicy, DivergenceGuard
from .step import DiscriminatorView, Phases, adam, discriminator_phase, generator_phase

N_FIXED_SAMPLES = 64
STAT_NAMES = ("loss_d", "loss_g", "d_real", "d_fake", "d_acc", "d_grad", "g_grad")
RANK_MIX = 1_009   # per-step random streams: stream_seed(seed, step) * RANK_MIX + rank, a different one per rank


class Trainer:
    def __init__(self, cfg: TrainConfig, ranks: Dist | None = None):
        self.cfg, self.ranks = cfg, ranks or Dist()
        self.device = device = torch.device(cfg.device)
        self.arch, self.loss = ARCHITECTURES.get(cfg.arch), LOSSES.get(cfg.loss)
        self.rank_slice = rank_slice(cfg.batch, self.ranks.rank, self.ranks.world)
        torch.manual_seed(cfg.seed)
        # channels-last (NHWC) convolutions are faster on CPU (oneDNN); real batches come channels-last too
        self.G = build_generator(cfg).to(device, memory_format=torch.channels_last)
        self.D = build_discriminator(cfg).to(device, memory_format=torch.channels_last)
        self.G_ema = make_ema(self.G) if cfg.ema > 0 else None
        self.G_params = list(self.G.parameters())
        self._samples = (None, None)  # (step, fixed samples): logging and sample grids share one forward
        self.opt_G = adam(self.G.parameters(), cfg.g_lr, (cfg.beta1, cfg.beta2), device)
        self.opt_D = adam(self.D.parameters(), cfg.d_lr, (cfg.beta1, cfg.beta2), device)
        self.rng = torch.Generator(device).manual_seed(cfg.seed + 1)  # latents of the (global) batches
        self.aug_rng = torch.Generator(device)  # augmentation, noise, penalties: reseeded every step
        self.fixed_z = torch.randn(N_FIXED_SAMPLES, cfg.z_dim,
                                   generator=torch.Generator().manual_seed(cfg.seed)).to(device)
        self.phases = Phases.from_config(cfg, sync_gradients=self.ranks.sync_gradients,
                                         amp_dtype=amp_dtype(cfg.amp, device), device_type=device.type)
        self.adjustments = Adjustments()
        self.balance: BalancePolicy | None = None
        self.guard = DivergenceGuard()
        self.doctor = Doctor(cfg.loss)
        self.step = self.images_seen = self.batches_drawn = 0
        self.seconds = 0.0
        self.progress = 0.0  # fraction of the run's duration done (kimg or minutes), for annealing and decay
        self.growth: dict = {}  # what the architecture's growth hook last reported
        self.events: list[dict] = []
        self.follow_adjustments()

    # --- one step ------------------------------------------------------------------------------------
    def train_step(self, batches: Batches) -> torch.Tensor:
        """D phase(s) then G phase; returns the step's numbers in STAT_NAMES order."""
        cfg = self.cfg
        if cfg.lr_decay != "none":
            self.apply_learning_rates()
        if self.arch.grow is not None:
            self.growth = self.arch.grow([n for n in (self.G, self.D, self.G_ema) if n is not None],
                                         self.images_seen, cfg)
        view = DiscriminatorView(self.augment, cfg.instance_noise * max(0.0, 1.0 - self.progress))
        n_d = self.balance.d_updates(cfg.d_steps) if self.balance else cfg.d_steps
        # a function of (seed, step, rank): resumable with any number of ranks, nothing to save
        self.aug_rng.manual_seed(stream_seed(cfg.seed, self.step) * RANK_MIX + self.ranks.rank)
        with self.phases.autocast():
            fake = self.G(self.latents())
        for i in range(max(n_d, 1)):
            real = batches.get(self.batches_drawn)
            self.batches_drawn += 1
            self.images_seen += cfg.batch  # the global batch, whatever the number of ranks
            if i == 0:
                d_fake_batch = fake.detach()
            else:
                with torch.no_grad(), self.phases.autocast():
                    d_fake_batch = self.G(self.latents())
            d = discriminator_phase(self.phases, self.D, self.G, self.opt_D, real, d_fake_batch, view, self.aug_rng,
                                    self.step, update=n_d > 0)
        g = generator_phase(self.phases, self.D, self.G, self.opt_G, self.G_params, fake, real, view, self.aug_rng,
                            self.step)
        if self.G_ema is not None:
            update_ema(self.G_ema, self.G, ema_decay(cfg.ema, self.step))
        self.step += 1
        stats = torch.stack([d.loss, g.loss, *self.d_outputs(d.real_out, d.fake_out), d.grad_norm, g.grad_norm])
        return self.ranks.average(stats)  # every rank's policies see the same numbers

    def latents(self) -> torch.Tensor:
        """This rank's slice of a global batch of latents (every rank draws the same global batch)."""
        z = torch.randn(self.cfg.batch, self.cfg.z_dim, device=self.device, generator=self.rng)
        return z[self.rank_slice]

    def d_outputs(self, real_out, fake_out):
        """D's mean verdicts (probabilities where the loss has them, raw scores otherwise) and its accuracy."""
        thr = self.loss.threshold
        acc = ((real_out > thr).float().mean() + (fake_out < thr).float().mean()) / 2
        if self.loss.probabilities:
            real_out, fake_out = torch.sigmoid(real_out), torch.sigmoid(fake_out)
        return real_out.mean(), fake_out.mean(), acc

    # --- policies and adjustments --------------------------------------------------------------------
    def observe(self, values: dict, rollback_to) -> None:
        """Feed a step's numbers to the policies; if the step diverged, roll back to `rollback_to()`'s checkpoint."""
        reason = self.guard.check({k: values[k] for k in ("loss_d", "loss_g")},
                                  {k: values[k] for k in ("d_grad", "g_grad")})
        if reason:
            self.rollback(rollback_to, reason)
            return
        if self.balance:
            self.balance.observe(values["loss_d"], self.step)
            self.events += self.balance.events
            self.balance.events = []

    def rollback(self, rollback_to, reason: str) -> None:
        """Return to the last good checkpoint with lower learning rates (at most `max_rollbacks` times)."""
        rollbacks = self.guard.rollbacks + 1
        if rollbacks > self.guard.max_rollbacks:
            raise UserError(f"training diverged ({reason}) {self.guard.max_rollbacks} times, even after lowering "
                            "the learning rates; try lower --g-lr/--d-lr, --sn or --loss hinge")
        found = rollback_to()
        if found is None:
            raise UserError(f"training diverged ({reason}) and no checkpoint is left to roll back to")
        step, adjustments = self.step, self.adjustments
        self.load_state_dict(found[1])
        self.guard.rollbacks, self.adjustments = rollbacks, adjustments
        self.adjust({"g_lr_scale": ROLLBACK_LR_FACTOR, "d_lr_scale": ROLLBACK_LR_FACTOR}, "rollback")
        self.events.append(event("divergence", "error",
                                 f"step {step}: {reason}; rolled back to step {self.step} and multiplied the learning "
                                 f"rates by {ROLLBACK_LR_FACTOR:g} (rollback {rollbacks} of {self.guard.max_rollbacks})",
                                 {"step": step, "reason": reason, "lr_scale": self.adjustments.g_lr_scale},
                                 "lower the learning rates"))

    def adjust(self, changes: dict, by: str) -> None:
        """Change how the run goes on (a doctor's remedy, a rollback): recorded in the run state."""
        self.adjustments.apply(changes, self.step, by)
        self.follow_adjustments()

    def follow_adjustments(self) -> None:
        """Bring what the adjustments control in line with them: augmentation, the balance policy, learning rates."""
        self.augment = parse_policy(self.adjustments.augment_policy(self.cfg))
        if self.adjustments.balance_on(self.cfg) and self.balance is None:
            self.balance = BalancePolicy(*self.loss.balance)
        self.apply_learning_rates()

    def apply_learning_rates(self) -> None:
        """The optimizers' rates: the config's, times the adjustments' scales and the decay at this point."""
        decay = decay_factor(self.cfg.lr_decay, self.progress)
        for opt, lr, scale in ((self.opt_G, self.cfg.g_lr, self.adjustments.g_lr_scale),
                               (self.opt_D, self.cfg.d_lr, self.adjustments.d_lr_scale)):
            for group in opt.param_groups:
                group["lr"], group["betas"] = lr * scale * decay, (self.cfg.beta1, self.cfg.beta2)

    # --- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "config": self.cfg.to_dict(),
            "G": self.G.state_dict(), "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "step": self.step, "images_seen": self.images_seen, "seconds": self.seconds,
            "rng": {"train": self.rng.get_state(), "torch": torch.get_rng_state()},
            "state": {"batches_drawn": self.batches_drawn, "adjustments": self.adjustments.state_dict(),
                      "balance": self.balance.state_dict() if self.balance else None,
                      "guard": self.guard.state_dict(), "doctor": self.doctor.state_dict()},
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
        self.batches_drawn = state["batches_drawn"]
        self.adjustments = Adjustments.from_state(state.get("adjustments"), state.get("lr_scale", 1.0))
        self.balance = None
        self.follow_adjustments()
        if self.balance and state["balance"]:
            self.balance.load_state_dict(state["balance"])
        self.guard.load_state_dict(state["guard"])
        self.doctor.load_state_dict(state["doctor"])

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
