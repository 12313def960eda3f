"""The run doctor: watches the logged numbers and says in plain language what is going wrong.

Each finding names the problem, the evidence (numbers and step) and a remedy; where the remedy is a
change of options that keeps the networks' shapes, it carries it as `fix`, which the loop applies when
--auto-fix is on. The doctor only reads numbers: it never changes training state itself.

Findings: mode collapse (samples of the fixed latent batch far less diverse than real images, or
near-duplicates, after having been more diverse or without growing for a while: a fresh generator's grey
images are not a collapse), D winning (D right about everything with a saturated loss while G's loss climbs
or its gradients vanish), D losing (D rating generated images above real ones, interval after interval: G's
steps are too large for D to follow), oscillation (D's loss swinging between intervals, not trending) / divergence,
no progress (samples static), and FID not improving. The runs each threshold was set from are in
docs/defaults.md ("The run doctor's thresholds").
"""
from __future__ import annotations

import math
from collections import deque

import torch

from .events import event
from .losses import LOSSES

HISTORY = 12
COLLAPSE_RATIO = 0.35     # fake diversity below this fraction of real diversity: low
DUPLICATE_FRACTION = 0.3  # more than this fraction of sample pairs are near-duplicates: collapse
DUPLICATE_DISTANCE = 0.1  # a pair closer than this fraction of the REAL images' mean pair distance is a near-duplicate
COLLAPSE_FALL = 0.5       # low diversity counts as a collapse when it fell below this fraction of its best ...
COLLAPSE_PATIENCE = 6     # ... or stayed low for this many intervals without growing by COLLAPSE_GROWTH
COLLAPSE_GROWTH = 1.25
D_WIN_ACC = 0.95          # D calls this fraction right ...
# ... and its loss is below the loss spec's `saturated` level
D_LOSING_INTERVALS = 4    # D scoring fakes above reals this many intervals in a row: G outruns D
MIN_INTERVALS = 4         # most checks compare this many intervals: a shorter run cannot be judged
STALL_CHANGE = 0.002      # fixed samples changing less than this (mean abs, [-1, 1] scale) per interval: stalled
OSCILLATION_SWING = 0.3   # D's loss jumping by more than this (and half its level) between intervals: oscillation
FID_PATIENCE = 3          # evaluations without a new best FID before suggesting to stop
LR_FACTOR = 0.5           # a remedy that lowers a learning rate multiplies it by this
LOWER_BOTH = {"g_lr_scale": LR_FACTOR, "d_lr_scale": LR_FACTOR}


@torch.no_grad()
def sample_diversity(x: torch.Tensor, scale: float | None = None) -> dict:
    """Mean pairwise RMS pixel distance of a batch, and the fraction of pairs that are near-duplicates: closer
    than DUPLICATE_DISTANCE times `scale` (the real images' mean distance; the batch's own mean if not given).
    (Against its own mean, a batch of copies of one image with a little noise would have no duplicates.)"""
    flat = x.detach().flatten(1).float()
    d = torch.cdist(flat, flat) / math.sqrt(flat.shape[1])
    n = flat.shape[0]
    off = d[~torch.eye(n, dtype=torch.bool, device=d.device)]
    mean = off.mean().item()
    ref = scale if scale else mean
    return {"mean": mean, "dup_frac": (off < DUPLICATE_DISTANCE * max(ref, 1e-8)).float().mean().item()}


class Doctor:
    def __init__(self, loss: str):
        self.loss = LOSSES.get(loss)
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

    def note_fid(self, fid: float) -> bool:
        """Record an evaluation; True if it is the best FID so far."""
        if fid < self.best_fid:
            self.best_fid, self.evals_since_best = fid, 0
            return True
        self.evals_since_best += 1
        return False

    def examine(self, record: dict, augmenting: bool = False) -> list[dict]:
        """New findings for this record (a finding is reported when it starts, not every interval). Each finding's
        `fix` is an adjustment (training/adjustments.py); `augmenting` says whether D's inputs are augmented now."""
        self.history.append(record)
        if record.get("div_fake", 0) > self.peak_div:
            self.peak_div, self.peak_step = record["div_fake"], record["step"]
        if record.get("dup_frac", 1.0) <= DUPLICATE_FRACTION:
            self.distinct_step = record["step"]
        found = {}
        for check in (self.mode_collapse, self.d_winning, self.d_losing, self.divergence, self.no_progress,
                      self.fid_stalled):
            f = check(record, augmenting)
            if f:
                found[f["kind"]] = f
        new = [f for kind, f in found.items() if kind not in self.active]
        self.active = set(found)
        return new

    # --- checks ------------------------------------------------------------------------------------
    def mode_collapse(self, r, augmenting):
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
        fix = {} if augmenting else {"augment": "translation,cutout"}
        fix["g_lr_scale"] = LR_FACTOR
        return event("mode_collapse", "warning",
                     f"mode collapse: samples from different latents look alike (diversity {ratio:.0%} of real "
                     f"images', {how}; {r['dup_frac']:.0%} near-duplicate pairs)",
                     {"step": r["step"], "div_fake": r["div_fake"], "div_real": r["div_real"],
                      "dup_frac": r["dup_frac"], "peak_div": self.peak_div, "peak_step": self.peak_step},
                     "lower --g-lr and add --augment translation,cutout; for a new run also --mbstd") | {"fix": fix}

    def d_winning(self, r, augmenting):
        """D right about nearly everything and its loss saturated for 3 intervals, while G's loss climbs or its
        gradients vanish."""
        recent = list(self.history)[-3:]
        if len(recent) < 3 or not all(x["d_acc"] > D_WIN_ACC for x in recent):
            return None
        floor = self.loss.saturated
        if floor is not None and not all(x["loss_d"] < floor for x in recent):
            return None
        first = self.history[0]
        climbing = r["loss_g"] > first["loss_g"] * 1.5
        vanishing = r["g_grad"] < 0.1 * max(first["g_grad"], 1e-12)
        if not (climbing or vanishing):
            return None
        fix = {"balance": True} if self.loss.balance else {}
        fix["d_lr_scale"] = LR_FACTOR
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

    def d_losing(self, r, augmenting):
        """D scores generated images higher than real ones for D_LOSING_INTERVALS intervals in a row."""
        recent = list(self.history)[-D_LOSING_INTERVALS:]
        if len(recent) < D_LOSING_INTERVALS or not all(x["d_fake"] > x["d_real"] for x in recent):
            return None
        fix = {"balance": True} if self.loss.balance else {}
        fix["g_lr_scale"] = LR_FACTOR
        return event("d_losing", "warning",
                     f"the discriminator is losing: it rates generated images as more real than real ones "
                     f"(D(real) {r['d_real']:.2f}, D(fake) {r['d_fake']:.2f}, D's loss {r['loss_d']:.3f}) for "
                     f"{len(recent)} intervals in a row since step {recent[0]['step']}; G's updates are too large "
                     "for D to follow, so D's verdicts no longer guide G and the samples wander",
                     {"step": r["step"], "d_real": r["d_real"], "d_fake": r["d_fake"], "loss_d": r["loss_d"],
                      "since_step": recent[0]["step"]},
                     "lower --g-lr (or raise --d-lr), or turn on --balance to give D extra steps while it is weak"
                     ) | {"fix": fix}

    def divergence(self, r, augmenting):
        if not all(math.isfinite(r[k]) for k in ("loss_d", "loss_g")):
            return event("divergence", "error", "the losses are not finite (NaN or inf)", {"step": r["step"]},
                         "lower the learning rates") | {"fix": LOWER_BOTH}
        values = [x["loss_d"] for x in self.history]
        if len(values) < HISTORY:
            return None
        mean = sum(values) / len(values)
        # the swing between consecutive intervals (von Neumann's successive-difference estimate of the spread):
        # a steady trend is not an oscillation, as it would be by the plain standard deviation
        swing = math.sqrt(sum((b - a) ** 2 for a, b in zip(values, values[1:])) / (2 * (len(values) - 1)))
        if swing > 0.5 * abs(mean) and swing > OSCILLATION_SWING:
            return event("oscillation", "warning",
                         f"the losses oscillate wildly (D's loss {mean:.2f}, swinging by ±{swing:.2f} from one "
                         f"interval to the next over the last {len(values)} intervals)",
                         {"step": r["step"], "loss_d_mean": round(mean, 4), "loss_d_swing": round(swing, 4)},
                         "lower both learning rates") | {"fix": LOWER_BOTH}
        return None

    def no_progress(self, r, augmenting):
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

    def fid_stalled(self, r, augmenting):
        return self.fid_event(r) if self.evals_since_best >= FID_PATIENCE else None

    def fid_event(self, r):
        return event("fid_stalled", "info",
                     f"FID has not improved for {self.evals_since_best} evaluations (best {self.best_fid:.2f}): "
                     "consider stopping; checkpoints/best.pt holds the best model",
                     {"step": r["step"], "best_fid": self.best_fid}, "stop training, or lower the learning rates")

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


def too_short_to_judge(records: list[dict]) -> str | None:
    """Why the doctor cannot judge a run with so few logging intervals (None when it can): its checks compare
    up to MIN_INTERVALS intervals, so silence about a shorter run means nothing."""
    if len(records) >= MIN_INTERVALS:
        return None
    return (f"too short to judge: {len(records)} logging interval{'s' if len(records) != 1 else ''}, the doctor's "
            f"checks need at least {MIN_INTERVALS} (train longer, or log more often with a smaller --log-every)")


def summarize(records: list[dict]) -> dict:
    """What `gansmith doctor RUN` reports: the run's state, every event it logged, and a verdict."""
    events = [e for r in records for e in r.get("events", [])]
    last = records[-1] if records else {}
    problems = [e for e in events if e["severity"] in ("warning", "error")]
    short = too_short_to_judge(records)
    if problems:
        verdict = f"{len(problems)} problem(s) found; the latest: {problems[-1]['message']}"
    else:
        verdict = short or "healthy: no problems found"
    return {"kimg": last.get("kimg", 0), "step": last.get("step", 0), "last": last, "events": events,
            "verdict": verdict}
