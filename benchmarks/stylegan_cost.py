"""What StyleGAN costs, against gansmith's default DCGAN measured in the same run.

    python benchmarks/stylegan_cost.py [--res 28,64] [--widths 16,32] [--steps 5] [--project-steps 10]

1. Training: one bare training step (the trainer's D phase + G phase on a fixed batch of 16,
   benchmarks/throughput.py's BareStep) for DCGAN at its defaults and for StyleGenerator + StyleDiscriminator
   at each width (no R1 or path-length phases, which add their own cost): FLOPs per step (torch's flop
   counter: exact, independent of the machine's load) and CPU seconds per step (process time, median), each
   as a ratio to DCGAN's.
2. Projection: CPU seconds per `gansmith.project.project` step (default VGG19 layers, W space) with a
   default-width StyleGAN generator at each resolution.
CPU time rather than wall time because a shared machine's wall time measures the other users.
Writes benchmarks/results/stylegan_cost.md.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import call_in_child, machine, peak_rss_mb, rss_mb  # noqa: E402
from throughput import BareStep  # noqa: E402
from time_to_quality import write_keeping_notes  # noqa: E402

from gansmith.models.stylegan import StyleDiscriminator, StyleGenerator  # noqa: E402
from gansmith.project import project  # noqa: E402
from gansmith.style.vgg import load_vgg19  # noqa: E402
from gansmith.training.step import adam  # noqa: E402

BATCH, CHANNELS = 16, 3
STYLEGAN2_ADAM = (2e-3, (0.0, 0.99))


def stylegan_step(res: int, width: int) -> BareStep:
    """BareStep with StyleGAN's networks and optimizers in place of DCGAN's."""
    step = BareStep(res, CHANNELS, BATCH)
    torch.manual_seed(0)
    step.G = StyleGenerator(res, CHANNELS, step.z_dim, width=width).to(memory_format=torch.channels_last)
    step.D = StyleDiscriminator(res, CHANNELS, width=width).to(memory_format=torch.channels_last)
    step.G_params = list(step.G.parameters())
    lr, betas = STYLEGAN2_ADAM
    step.opt_G = adam(step.G.parameters(), lr, betas, torch.device("cpu"))
    step.opt_D = adam(step.D.parameters(), lr, betas, torch.device("cpu"))
    return step


def step_memory_mb(res: int, width: int | None) -> float:
    """The rise of peak RSS over the RSS after building, over a few training steps of DCGAN (width None) or StyleGAN
    at `width`; run it in a fresh process (call_in_child), as peak RSS is a high-water mark."""
    torch.set_num_threads(1)
    step = BareStep(res, CHANNELS, BATCH) if width is None else stylegan_step(res, width)
    rss0 = rss_mb()
    for _ in range(3):
        step()
    return peak_rss_mb() - rss0


def cpu_seconds(fn, steps: int, warmup: int = 2) -> float:
    """Median process CPU seconds of fn() after the warm-up calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return float(np.median(times))


def projection_cpu_seconds(res: int, steps: int, vgg) -> float:
    """CPU seconds per projection step: a run of `steps` steps minus a run of one (the set-up)."""
    torch.manual_seed(0)
    G = StyleGenerator(res, CHANNELS).eval()
    target = np.random.default_rng(0).integers(0, 256, (res, res, CHANNELS), dtype=np.uint8)
    runs = {}
    for n in (1, steps + 1):
        start = time.process_time()
        project(G, target, steps=n, vgg=vgg, progress=False)
        runs[n] = time.process_time() - start
    return (runs[steps + 1] - runs[1]) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--res", default="28,64")
    ap.add_argument("--widths", default="16,32")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--project-steps", type=int, default=10)
    args = ap.parse_args()
    resolutions = [int(r) for r in args.res.split(",")]
    widths = [int(w) for w in args.widths.split(",")]
    rows = ["| res | network | GFLOP / step | vs DCGAN | CPU s / step | vs DCGAN | peak RSS rise MB | vs DCGAN |",
            "|---|---|---|---|---|---|---|---|"]
    for res in resolutions:
        dcgan = BareStep(res, CHANNELS, BATCH)
        base_flops, base_cpu = dcgan.flops(), cpu_seconds(dcgan, args.steps)
        base_mem = call_in_child("stylegan_cost", "step_memory_mb", res, None)
        rows.append(f"| {res} | DCGAN defaults (width {dcgan.width}) | {base_flops / 1e9:.2f} | 1.00 | "
                    f"{base_cpu:.3f} | 1.00 | {base_mem:.0f} | 1.0 |")
        for width in widths:
            step = stylegan_step(res, width)
            flops, cpu = step.flops(), cpu_seconds(step, args.steps)
            mem = call_in_child("stylegan_cost", "step_memory_mb", res, width)
            rows.append(f"| {res} | StyleGAN width {width} | {flops / 1e9:.2f} | {flops / base_flops:.1f} | "
                        f"{cpu:.3f} | {cpu / base_cpu:.1f} | {mem:.0f} | {mem / base_mem:.1f} |")
            print(rows[-1], flush=True)
    vgg = load_vgg19()
    proj = ["| res | CPU s / projection step |", "|---|---|"]
    for res in resolutions:
        proj.append(f"| {res} | {projection_cpu_seconds(res, args.project_steps, vgg):.3f} |")
        print(proj[-1], flush=True)
    command = "python benchmarks/stylegan_cost.py " + " ".join(sys.argv[1:])
    lines = [
        "# StyleGAN cost on the CPU", "",
        f"Date: {datetime.date.today()}. Machine: {machine()}. Load average at the end: "
        f"{os.getloadavg()[0]:.1f}.", f"Command: `{command.strip()}`", "",
        "Training step: the trainer's D phase + G phase (non-saturating loss, no R1 or path-length phase), batch 16,",
        "3-channel images, channels-last; FLOPs counted by torch, CPU time (process time, median over the steps)",
        "measured in the same run as DCGAN's; memory: the rise of peak RSS over the RSS after building the networks,",
        "over three steps, each network in a fresh process.", "",
        *rows, "", "Projection (`gansmith.project.project`, W space, default VGG19 layers, default-width G):", "",
        *proj]
    write_keeping_notes(HERE / "results" / "stylegan_cost.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
