"""The run doctor: watches the logged numbers and says in plain language what is going wrong.

Each finding names the problem, the evidence (numbers and step) and a remedy; where the remedy is a
change of options that keeps the networks' shapes, it carries it as `fix`, which the loop applies when
--auto-fix is on. The doctor only reads numbers: it never changes training state itself.

Findings: mode collapse (samples of the fixed latent batch far less diverse than real images, or
near-duplicates), D winning (D sure of every call, G's loss climbing), oscillation / divergence,
no progress (samples static), and FID not improving.
"""
from __future__ import annotations

import math
from collections import deque

import torch

from .training.policies import event

HISTORY = 12
COLLAPSE_RATIO = 0.35     # fake diversity below this fraction of real diversity: collapse
DUPLICATE_FRACTION = 0.3  # more than this fraction of sample pairs are near-duplicates: collapse
STALL_CHANGE = 0.002      # fixed samples changing less than this (mean abs, [-1, 1] scale) per interval: stalled
FID_PATIENCE = 3


@torch.no_grad()
def sample_diversity(x: torch.Tensor) -> dict:
    """Mean pairwise RMS pixel distance of a batch, and the fraction of pairs that are near-duplicates."""
    flat = x.detach().flatten(1).float()
    d = torch.cdist(flat, flat) / math.sqrt(flat.shape[1])
    n = flat.shape[0]
    off = d[~torch.eye(n, dtype=torch.bool, device=d.device)]
    mean = off.mean().item()
    return {"mean": mean, "dup_frac": (off < 0.1 * max(mean, 1e-8)).float().mean().item()}


class Doctor:
    def __init__(self, loss: str):
        self.loss = loss
        self.real_diversity = None
        self.history: deque = deque(maxlen=HISTORY)
        self.active: set[str] = set()
        self.previous_samples: torch.Tensor | None = None
        self.best_fid, self.evals_since_best = math.inf, 0

    def set_real_diversity(self, diversity: dict) -> None:
        self.real_diversity = diversity["mean"]

    def measure(self, fake: torch.Tensor) -> dict:
        """The numbers the doctor needs from the fixed-latent samples, for the log record."""
        div = sample_diversity(fake)
        out = {"div_fake": round(div["mean"], 5), "div_real": round(self.real_diversity or 0.0, 5),
               "dup_frac": round(div["dup_frac"], 4)}
        if self.previous_samples is not None:
            out["sample_change"] = round((fake - self.previous_samples).abs().mean().item(), 5)
        self.previous_samples = fake.detach().clone()
        return out

    def examine(self, record: dict, cfg=None) -> list[dict]:
        """New findings for this record (a finding is reported when it starts, not every interval)."""
        self.history.append(record)
        found = {}
        for check in (self.mode_collapse, self.d_winning, self.divergence, self.no_progress, self.fid_stalled):
            f = check(record, cfg)
            if f:
                found[f["kind"]] = f
        new = [f for kind, f in found.items() if kind not in self.active]
        self.active = set(found)
        return new

    # --- checks ------------------------------------------------------------------------------------
    def mode_collapse(self, r, cfg):
        recent = list(self.history)[-2:]
        if len(recent) < 2 or not r.get("div_real"):
            return None
        ratio = r["div_fake"] / r["div_real"]
        low = all(x["div_fake"] < COLLAPSE_RATIO * x["div_real"] for x in recent)
        dups = all(x["dup_frac"] > DUPLICATE_FRACTION for x in recent)
        if not (low or dups):
            return None
        fix = {"augment": "translation,cutout"} if cfg is not None and not cfg.augment else {}
        if cfg is not None:
            fix["g_lr"] = cfg.g_lr * 0.5
        return event("mode_collapse", "warning",
                     f"mode collapse: samples from different latents look alike (diversity {ratio:.0%} of real "
                     f"images', {r['dup_frac']:.0%} near-duplicate pairs)",
                     {"step": r["step"], "div_fake": r["div_fake"], "div_real": r["div_real"],
                      "dup_frac": r["dup_frac"]},
                     "train with --mbstd (new run) and --augment translation,cutout; lower --g-lr") | {"fix": fix}

    def d_winning(self, r, cfg):
        recent = list(self.history)[-3:]
        if len(recent) < 3 or not all(x["d_acc"] > 0.95 for x in recent):
            return None
        first = self.history[0]
        rising = r["loss_g"] > first["loss_g"] * 1.5 or r["g_grad"] < 0.1 * max(first["g_grad"], 1e-12)
        if not rising:
            return None
        fix = {"balance": True} if cfg is not None and cfg.loss != "wgan-gp" else {}
        if cfg is not None:
            fix["d_lr"] = cfg.d_lr * 0.5
        return event("d_winning", "warning",
                     f"the discriminator is winning: it tells real from fake {r['d_acc']:.0%} of the time, "
                     f"G's loss rose from {first['loss_g']:.2f} to {r['loss_g']:.2f} and its gradients "
                     f"went from {first['g_grad']:.3g} to {r['g_grad']:.3g}, so G learns little",
                     {"step": r["step"], "d_acc": r["d_acc"], "d_real": r["d_real"], "d_fake": r["d_fake"],
                      "loss_g": r["loss_g"], "g_grad": r["g_grad"]},
                     "lower --d-lr, turn on --balance, or --augment for small data sets") | {"fix": fix}

    def divergence(self, r, cfg):
        if not all(math.isfinite(r[k]) for k in ("loss_d", "loss_g")):
            return event("divergence", "error", "the losses are not finite (NaN or inf)", {"step": r["step"]},
                         "lower the learning rates") | {"fix": self.lower_lrs(cfg)}
        values = [x["loss_d"] for x in self.history]
        if len(values) < HISTORY:
            return None
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        if std > 0.5 * abs(mean) and std > 0.3:
            return event("oscillation", "warning",
                         f"the losses oscillate wildly (D's loss {mean:.2f} ± {std:.2f} over the last {len(values)} intervals)",
                         {"step": r["step"], "loss_d_mean": round(mean, 4), "loss_d_std": round(std, 4)},
                         "lower both learning rates") | {"fix": self.lower_lrs(cfg)}
        return None

    def no_progress(self, r, cfg):
        recent = list(self.history)[-4:]
        if len(recent) < 4 or not all("sample_change" in x for x in recent):
            return None
        if all(x["sample_change"] < STALL_CHANGE for x in recent):
            return event("no_progress", "warning",
                         f"no progress: the fixed samples have barely changed over the last {len(recent)} intervals "
                         f"(mean change {r['sample_change']:.4f})",
                         {"step": r["step"], "sample_change": r["sample_change"]},
                         "if the samples are good, stop; otherwise raise the learning rates or check the data")
        return None

    def fid_stalled(self, r, cfg):
        if "fid" not in r:
            return None if self.evals_since_best < FID_PATIENCE else self.fid_event(r)
        if r["fid"] < self.best_fid:
            self.best_fid, self.evals_since_best = r["fid"], 0
        else:
            self.evals_since_best += 1
        return self.fid_event(r) if self.evals_since_best >= FID_PATIENCE else None

    def fid_event(self, r):
        return event("fid_stalled", "info",
                     f"FID has not improved for {self.evals_since_best} evaluations (best {self.best_fid:.2f}): "
                     "consider stopping; checkpoints/best.pt holds the best model",
                     {"step": r["step"], "best_fid": self.best_fid}, "stop training, or lower the learning rates")

    @staticmethod
    def lower_lrs(cfg):
        return {"g_lr": cfg.g_lr * 0.5, "d_lr": cfg.d_lr * 0.5} if cfg is not None else {}

    # --- checkpoints -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"real_diversity": self.real_diversity, "active": sorted(self.active),
                "best_fid": self.best_fid, "evals_since_best": self.evals_since_best}

    def load_state_dict(self, state: dict) -> None:
        self.real_diversity = state["real_diversity"]
        self.active = set(state["active"])
        self.best_fid, self.evals_since_best = state["best_fid"], state["evals_since_best"]


def summarize(records: list[dict]) -> dict:
    """What `gansmith doctor RUN` reports: the run's state, every event it logged, and a verdict."""
    events = [e for r in records for e in r.get("events", [])]
    last = records[-1] if records else {}
    problems = [e for e in events if e["severity"] in ("warning", "error")]
    return {"kimg": last.get("kimg", 0), "step": last.get("step", 0), "last": last, "events": events,
            "verdict": "healthy: no problems found" if not problems else
                       f"{len(problems)} problem(s) found; the latest: {problems[-1]['message']}"}
