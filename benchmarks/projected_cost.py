"""What a projected discriminator costs per training step on the CPU, as a ratio to the DCGAN discriminator.

    python benchmarks/projected_cost.py [--rounds 10] [--budget 60] [--out benchmarks/results/projected_cost.md]

For each setting (28 px grayscale batch 16, 64 px colour batch 8) and each projected-D variant (the size images are
resized to before the backbone, how many backbone stages, channels-last or not), one child process builds the
trainer's default generator, the baseline `dcgan.Discriminator(res, channels, width=32)` and the variant, and runs
the trainer's own D phase (real + fake batch, forward and backward) and G phase (backward through D into G):
- time: CPU seconds per step (the process's CPU time, on one thread: the unit of a CPU-minute budget, and far less
  disturbed by other work on the machine than wall time); baseline and variant steps alternate; medians after
  warm-up;
- memory: the rise of the process's peak RSS over its RSS after building the networks, first for the baseline's
  steps alone, then for the variant's (peak RSS is a high-water mark, so the variant is measured second).
Writes a markdown table with the ratios (keeping the hand-written notes below the table).
"""
from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import call_in_child, machine, peak_rss_mb, rss_mb  # noqa: E402
from time_to_quality import write_keeping_notes  # noqa: E402

from throughput import BareStep  # noqa: E402

from gansmith.models import dcgan  # noqa: E402
from gansmith.models.projected import ProjectedDiscriminator  # noqa: E402
from gansmith.training.step import adam  # noqa: E402

WARMUP, MIN_ROUNDS = 1, 3
SETTINGS = ((28, 1, 16), (64, 3, 8))  # res, channels, batch
# (backbone_res, stages, channels_last); backbone_res None = the images' own size (a repeated row is skipped)
VARIANTS = ((None, 4, True), (64, 4, True), (128, 4, True), (224, 4, True), (64, 3, True), (64, 2, True),
            (64, 4, False))


def step_with(D, res: int, channels: int, batch: int, channels_last: bool) -> BareStep:
    """The trainer's D phase and G phase (throughput.BareStep, float32) with D in place of the default one."""
    step = BareStep(res, channels, batch, channels_last=channels_last, amp=False)
    step.D = D.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    step.opt_D = adam(step.D.parameters(), step.d_lr, step.betas, torch.device("cpu"))
    return step


def cpu_seconds(step: BareStep) -> float:
    """CPU seconds of one step (this process's, all threads): robust to other work on a shared machine."""
    start = time.process_time()
    step()
    return time.process_time() - start


def measure(res: int, channels: int, batch: int, backbone_res: int | None, stages: int, channels_last: bool,
            rounds: int, budget_s: float) -> dict:
    """One variant against the baseline, in this process (run it in a fresh one for a clean peak RSS);
    at most `rounds` timed pairs of steps, fewer when the variant's steps would take more than `budget_s`."""
    torch.set_num_threads(1)
    base = step_with(dcgan.Discriminator(res, channels, width=32), res, channels, batch, channels_last)
    proj_D = ProjectedDiscriminator(res, channels, backbone_res=backbone_res or res, stages=stages)
    proj = step_with(proj_D, res, channels, batch, channels_last)
    rss0 = rss_mb()
    for _ in range(WARMUP):
        cpu_seconds(base)
    base_mem = peak_rss_mb() - rss0
    for _ in range(WARMUP):
        proj_s = cpu_seconds(proj)
    proj_mem = peak_rss_mb() - rss0
    rounds = int(np.clip(budget_s / proj_s, MIN_ROUNDS, rounds))
    times = np.array([(cpu_seconds(base), cpu_seconds(proj)) for _ in range(rounds)])
    base_s, proj_s = np.median(times, axis=0)
    return {"rounds": rounds, "base_s": base_s, "proj_s": proj_s, "base_mem": base_mem, "proj_mem": proj_mem,
            "proj_params": sum(p.numel() for p in proj_D.parameters()),
            "base_params": sum(p.numel() for p in base.D.parameters())}


def table(rounds: int, budget_s: float) -> list[str]:
    rows = ["| res | ch | batch | backbone input | stages | layout | D params | CPU s/step (DCGAN D) | (projected) "
            "| CPU-time ratio | timed pairs | peak RSS rise MB (DCGAN D) | (projected) | memory ratio |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for res, channels, batch in SETTINGS:
        seen = set()
        for backbone_res, stages, channels_last in VARIANTS:
            backbone_res = backbone_res or res
            if (backbone_res, stages, channels_last) in seen:
                continue
            seen.add((backbone_res, stages, channels_last))
            r = call_in_child("projected_cost", "measure", res, channels, batch, backbone_res, stages, channels_last,
                              rounds, budget_s)
            rows.append(f"| {res} | {channels} | {batch} | {backbone_res} | {stages} | "
                        f"{'channels-last' if channels_last else 'NCHW'} | {r['proj_params']:,} "
                        f"(DCGAN {r['base_params']:,}) | {r['base_s']:.4f} | {r['proj_s']:.4f} | "
                        f"**{r['proj_s'] / r['base_s']:.1f}x** | {r['rounds']} | {r['base_mem']:.0f} | {r['proj_mem']:.0f} | "
                        f"{r['proj_mem'] / max(r['base_mem'], 1):.1f}x |")
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="timed steps of each D per variant, at most")
    parser.add_argument("--budget", type=float, default=60, help="seconds of projected steps per variant, roughly")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "projected_cost.md")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the children measure (and so the header names it)
    started = datetime.datetime.now(datetime.timezone.utc)
    rows = table(args.rounds, args.budget)
    header = ["# Projected discriminator: cost per training step vs the DCGAN discriminator", "",
              f"{started:%Y-%m-%d %H:%M} UTC · {machine()}", "",
              f"Command: `python {' '.join(sys.argv)}`", "",
              "Step = the trainer's D phase (real + fake batch) and G phase (backward through D into the default "
              "generator), float32, one thread; CPU-time ratio = projected / DCGAN D (`dcgan.Discriminator(res, channels, width=32)`) "
              "in the same process, steps alternating; memory = rise of peak RSS over the RSS after building.", ""]
    write_keeping_notes(args.out, header + rows)


if __name__ == "__main__":
    main()
