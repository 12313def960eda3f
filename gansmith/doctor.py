"""The run doctor: watches the logged numbers and says in plain language what is going wrong.

Each finding names the problem, the evidence (numbers and step) and a remedy; where the remedy is a
change of options that keeps the networks' shapes, it carries it as `fix`, which the loop applies when
--auto-fix is on. The doctor only reads numbers: it never changes training state itself.

Findings: mode collapse (samples of the fixed latent batch far less diverse than real images, or
near-duplicates, after having been more diverse or without growing for a while: a fresh generator's grey
images are not a collapse), D winning (D right about everything with a saturated loss while G's loss climbs
or its gradients vanish), D losing (D rating generated images above real ones, interval after interval: G's
steps are too large for D to follow), oscillation (D's loss swinging between intervals, not trending) / divergence,
no progress (samples static), and FID not improving. The thresholds below come with the numbers of the
real runs they were set from.
"""
from __future__ import annotations

import math
from collections import deque

import torch


def event(*args, **kwargs) -> dict:
    """training.policies.event, imported late: importing it at the top made `import gansmith.doctor` (before
    gansmith.training) fail with a circular import (training/__init__ -> loop -> doctor)."""
    from .training.policies import event as make_event
    return make_event(*args, **kwargs)

HISTORY = 12
COLLAPSE_RATIO = 0.35     # fake diversity below this fraction of real diversity: low
DUPLICATE_FRACTION = 0.3  # more than this fraction of sample pairs are near-duplicates: collapse
DUPLICATE_DISTANCE = 0.1  # a pair closer than this fraction of the REAL images' mean pair distance is a near-duplicate
COLLAPSE_FALL = 0.5       # low diversity counts as a collapse when it fell below this fraction of its best ...
COLLAPSE_PATIENCE = 6     # ... or stayed low for this many intervals without growing by COLLAPSE_GROWTH
COLLAPSE_GROWTH = 1.25
# Why the two conditions: a fresh DCGAN generator makes near-identical grey images (its weights start at
# N(0, 0.02)), so low diversity alone flags every healthy run at the start. Measured (width 16, batch 32,
# Fashion-MNIST, real diversity 0.786): a healthy run's fixed-sample diversity rose 0.004, 0.010, 0.020, 0.038,
# 0.065, 0.096 ... 0.43 over its first 15 intervals, roughly x1.3-2 per interval, and the lead's own 4-minute
# demo was flagged at step 32 (diversity 0.13, growing x2.2 per interval) by the old low-diversity-only rule.
D_WIN_ACC = 0.95          # D calls this fraction right ...
D_WIN_LOSS = {"ns": 0.05, "hinge": 0.05, "lsgan": 0.01}  # ... and its loss is this saturated (half the balance policy's)
# A healthy DCGAN run (same set-up) spends its early intervals with D ahead: d_acc 1.0, D(real) 0.93,
# D(fake) 0.06, D loss 0.14-0.18, G loss 0.65 -> 3.1 while its samples improve. A run where D wins outright
# (g_lr 2e-6, d_lr 2e-3) goes to D loss 0.001-0.03 and G loss 6-8. D's loss level separates the two.
D_LOSING_INTERVALS = 4    # D scoring fakes above reals this many intervals in a row: G outruns D
# Measured on the metrics.jsonl of 530 runs on this machine (time-to-quality, sweeps, Stacked MNIST, tests):
# outside runs with a raised G learning rate, D scored fakes above reals for at most 2 intervals in a row
# (tiny progressive test runs; never in a healthy full-size run). Runs at --g-lr 1e-2 to 5e-2 (20-250x the
# default) did so for every interval from the start (9-20 in a row), while their samples stayed blotchy:
# D's verdicts carry no signal, so G wanders. Neither D winning nor mode collapse describes that.
STALL_CHANGE = 0.002      # fixed samples changing less than this (mean abs, [-1, 1] scale) per interval: stalled
OSCILLATION_SWING = 0.3   # D's loss jumping by more than this (and half its level) between intervals: oscillation
FID_PATIENCE = 3


@torch.no_grad()
def sample_diversity(x: torch.Tensor, scale: float | None = None) -> dict:
    """Mean pairwise RMS pixel distance of a batch, and the fraction of pairs that are near-duplicates: closer
    than DUPLICATE_DISTANCE times `scale` (the real images' mean distance; the batch's own mean if not given).
    Against the batch's own mean, a batch of 64 copies of one image plus a little noise had 0% duplicates."""
    flat = x.detach().flatten(1).float()
    d = torch.cdist(flat, flat) / math.sqrt(flat.shape[1])
    n = flat.shape[0]
    off = d[~torch.eye(n, dtype=torch.bool, device=d.device)]
    mean = off.mean().item()
    ref = scale if scale else mean
    return {"mean": mean, "dup_frac": (off < DUPLICATE_DISTANCE * max(ref, 1e-8)).float().mean().item()}


class Doctor:
    def __init__(self, loss: str):
        self.loss = loss
        self.real_diversity = None
        self.history: deque = deque(maxlen=HISTORY)
        self.active: set[str] = set()
        self.previous_samples: torch.Tensor | None = None
        self.best_fid, self.evals_since_best = math.inf, 0
        self.peak_div, self.peak_step = 0.0, 0   # the most diverse the fixed samples have been, and when
        self.distinct_step = None                # the last interval with few near-duplicates

    def set_real_diversity(self, diversity: dict) -> None:
        self.real_diversity = diversity["mean"]

    def measure(self, fake: torch.Tensor) -> dict:
        """The numbers the doctor needs from the fixed-latent samples, for the log record."""
        div = sample_diversity(fake, scale=self.real_diversity)
        out = {"div_fake": round(div["mean"], 5), "div_real": round(self.real_diversity or 0.0, 5),
               "dup_frac": round(div["dup_frac"], 4)}
        if self.previous_samples is not None:
            out["sample_change"] = round((fake - self.previous_samples).abs().mean().item(), 5)
        self.previous_samples = fake.detach().clone()
        return out

    def examine(self, record: dict, cfg=None) -> list[dict]:
        """New findings for this record (a finding is reported when it starts, not every interval)."""
        self.history.append(record)
        if record.get("div_fake", 0) > self.peak_div:
            self.peak_div, self.peak_step = record["div_fake"], record["step"]
        if record.get("dup_frac", 1.0) <= DUPLICATE_FRACTION:
            self.distinct_step = record["step"]
        found = {}
        for check in (self.mode_collapse, self.d_winning, self.d_losing, self.divergence, self.no_progress,
                      self.fid_stalled):
            f = check(record, cfg)
            if f:
                found[f["kind"]] = f
        new = [f for kind, f in found.items() if kind not in self.active]
        self.active = set(found)
        return new

    # --- checks ------------------------------------------------------------------------------------
    def mode_collapse(self, r, cfg):
        """Low diversity (or many near-duplicates) in the last 2 intervals that is not just a young generator:
        either it fell from an earlier peak, or it has stayed low for COLLAPSE_PATIENCE intervals without growing
        while G kept changing (a stalled G is `no_progress`, not collapse)."""
        recent = list(self.history)[-2:]
        if len(recent) < 2 or not r.get("div_real"):
            return None
        ratio = r["div_fake"] / r["div_real"]
        low = all(x["div_fake"] < COLLAPSE_RATIO * x["div_real"] for x in recent)
        dups = all(x["dup_frac"] > DUPLICATE_FRACTION for x in recent)
        if not (low or dups):
            return None
        fell = ((low and self.peak_div >= COLLAPSE_RATIO * r["div_real"] and r["div_fake"] < COLLAPSE_FALL * self.peak_div)
                or (dups and self.distinct_step is not None))  # duplicates that were not there before
        window = list(self.history)[-COLLAPSE_PATIENCE:]
        stuck = (len(window) == COLLAPSE_PATIENCE
                 and all(x["div_fake"] < COLLAPSE_RATIO * x["div_real"] or x["dup_frac"] > DUPLICATE_FRACTION
                         for x in window)
                 and r["div_fake"] < COLLAPSE_GROWTH * window[0]["div_fake"]
                 and all(x.get("sample_change", 0.0) >= STALL_CHANGE for x in window[1:]))
        if not (fell or stuck):
            return None
        how = (f"best {self.peak_div / r['div_real']:.0%} at step {self.peak_step}" if fell else
               f"no higher than {window[0]['div_fake'] / r['div_real']:.0%} {len(window)} intervals ago")
        fix = {"augment": "translation,cutout"} if cfg is not None and not cfg.augment else {}
        if cfg is not None:
            fix["g_lr"] = cfg.g_lr * 0.5
        return event("mode_collapse", "warning",
                     f"mode collapse: samples from different latents look alike (diversity {ratio:.0%} of real "
                     f"images', {how}; {r['dup_frac']:.0%} near-duplicate pairs)",
                     {"step": r["step"], "div_fake": r["div_fake"], "div_real": r["div_real"],
                      "dup_frac": r["dup_frac"], "peak_div": self.peak_div, "peak_step": self.peak_step},
                     "lower --g-lr and add --augment translation,cutout; for a new run also --mbstd") | {"fix": fix}

    def d_winning(self, r, cfg):
        """D right about nearly everything and its loss saturated for 3 intervals, while G's loss climbs or its
        gradients vanish."""
        recent = list(self.history)[-3:]
        if len(recent) < 3 or not all(x["d_acc"] > D_WIN_ACC for x in recent):
            return None
        floor = D_WIN_LOSS.get(self.loss)
        if floor is not None and not all(x["loss_d"] < floor for x in recent):
            return None
        first = self.history[0]
        climbing = r["loss_g"] > first["loss_g"] * 1.5
        vanishing = r["g_grad"] < 0.1 * max(first["g_grad"], 1e-12)
        if not (climbing or vanishing):
            return None
        fix = {"balance": True} if cfg is not None and cfg.loss != "wgan-gp" else {}
        if cfg is not None:
            fix["d_lr"] = cfg.d_lr * 0.5
        g_part = (f"G's loss rose from {first['loss_g']:.2f} to {r['loss_g']:.2f}" if climbing else
                  f"G's loss is {r['loss_g']:.2f}")
        if vanishing:
            g_part += f" and its gradients shrank from {first['g_grad']:.3g} to {r['g_grad']:.3g}"
        return event("d_winning", "warning",
                     f"the discriminator is winning: it tells real from fake {r['d_acc']:.0%} of the time "
                     f"(D(real) {r['d_real']:.2f}, D(fake) {r['d_fake']:.2f}, D's loss {r['loss_d']:.3f}); "
                     f"{g_part} since step {first['step']}, so G learns little",
                     {"step": r["step"], "d_acc": r["d_acc"], "d_real": r["d_real"], "d_fake": r["d_fake"],
                      "loss_d": r["loss_d"], "loss_g": r["loss_g"], "g_grad": r["g_grad"],
                      "since_step": first["step"], "loss_g_then": first["loss_g"]},
                     "lower --d-lr, turn on --balance, or --augment for small data sets") | {"fix": fix}

    def d_losing(self, r, cfg):
        """D scores generated images higher than real ones for D_LOSING_INTERVALS intervals in a row."""
        recent = list(self.history)[-D_LOSING_INTERVALS:]
        if len(recent) < D_LOSING_INTERVALS or not all(x["d_fake"] > x["d_real"] for x in recent):
            return None
        fix = {"balance": True} if cfg is not None and cfg.loss != "wgan-gp" else {}
        if cfg is not None:
            fix["g_lr"] = cfg.g_lr * 0.5
        return event("d_losing", "warning",
                     f"the discriminator is losing: it rates generated images as more real than real ones "
                     f"(D(real) {r['d_real']:.2f}, D(fake) {r['d_fake']:.2f}, D's loss {r['loss_d']:.3f}) for "
                     f"{len(recent)} intervals in a row since step {recent[0]['step']}; G's updates are too large "
                     "for D to follow, so D's verdicts no longer guide G and the samples wander",
                     {"step": r["step"], "d_real": r["d_real"], "d_fake": r["d_fake"], "loss_d": r["loss_d"],
                      "since_step": recent[0]["step"]},
                     "lower --g-lr (or raise --d-lr), or turn on --balance to give D extra steps while it is weak"
                     ) | {"fix": fix}

    def divergence(self, r, cfg):
        if not all(math.isfinite(r[k]) for k in ("loss_d", "loss_g")):
            return event("divergence", "error", "the losses are not finite (NaN or inf)", {"step": r["step"]},
                         "lower the learning rates") | {"fix": self.lower_lrs(cfg)}
        values = [x["loss_d"] for x in self.history]
        if len(values) < HISTORY:
            return None
        mean = sum(values) / len(values)
        # the swing between consecutive intervals (von Neumann's successive-difference estimate of the spread):
        # a steady trend is not an oscillation. With the plain standard deviation, a healthy run whose D loss
        # fell smoothly 1.12 -> 0.14 over 12 intervals read as "0.44 ± 0.33" and was flagged.
        swing = math.sqrt(sum((b - a) ** 2 for a, b in zip(values, values[1:])) / (2 * (len(values) - 1)))
        if swing > 0.5 * abs(mean) and swing > OSCILLATION_SWING:
            return event("oscillation", "warning",
                         f"the losses oscillate wildly (D's loss {mean:.2f}, swinging by ±{swing:.2f} from one "
                         f"interval to the next over the last {len(values)} intervals)",
                         {"step": r["step"], "loss_d_mean": round(mean, 4), "loss_d_swing": round(swing, 4)},
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
                "best_fid": self.best_fid, "evals_since_best": self.evals_since_best,
                "peak_div": self.peak_div, "peak_step": self.peak_step, "distinct_step": self.distinct_step}

    def load_state_dict(self, state: dict) -> None:
        self.real_diversity = state["real_diversity"]
        self.active = set(state["active"])
        self.best_fid, self.evals_since_best = state["best_fid"], state["evals_since_best"]
        self.peak_div, self.peak_step = state.get("peak_div", 0.0), state.get("peak_step", 0)
        self.distinct_step = state.get("distinct_step")


def summarize(records: list[dict]) -> dict:
    """What `gansmith doctor RUN` reports: the run's state, every event it logged, and a verdict."""
    events = [e for r in records for e in r.get("events", [])]
    last = records[-1] if records else {}
    problems = [e for e in events if e["severity"] in ("warning", "error")]
    return {"kimg": last.get("kimg", 0), "step": last.get("step", 0), "last": last, "events": events,
            "verdict": "healthy: no problems found" if not problems else
                       f"{len(problems)} problem(s) found; the latest: {problems[-1]['message']}"}
