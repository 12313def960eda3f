"""What StyleGAN costs on this CPU, against gansmith's default DCGAN measured in the same run.

    python benchmarks/stylegan_cost.py [--res 28,64] [--widths 16,32] [--steps 20] [--project-steps 20]

1. Training: seconds per bare training step (the trainer's D phase + G phase on a fixed batch of 16,
   benchmarks/throughput.py's BareStep) for DCGAN at its defaults and for StyleGenerator + StyleDiscriminator
   at each width (Adam (0, 0.99) as StyleGAN2; no R1 or path-length phases, which add their own cost); the
   ratio to DCGAN.
2. Projection: seconds per `gansmith.project.project` step (default VGG19 layers, W space) with a default-width
   StyleGAN generator at each resolution.
Writes benchmarks/results/stylegan_cost.md.
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
from common import machine  # noqa: E402
from throughput import BareStep  # noqa: E402

from gansmith.fileio import atomic_write_text  # noqa: E402
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


def projection_seconds(res: int, steps: int, vgg) -> float:
    torch.manual_seed(0)
    G = StyleGenerator(res, CHANNELS).eval()
    target = np.random.default_rng(0).integers(0, 256, (res, res, CHANNELS), dtype=np.uint8)
    start = time.perf_counter()
    project(G, target, steps=steps, vgg=vgg, progress=False)
    return (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--res", default="28,64")
    ap.add_argument("--widths", default="16,32")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--project-steps", type=int, default=20)
    args = ap.parse_args()
    resolutions = [int(r) for r in args.res.split(",")]
    widths = [int(w) for w in args.widths.split(",")]
    rows = ["| res | network | seconds / step (batch 16) | images / s | vs DCGAN |", "|---|---|---|---|---|"]
    for res in resolutions:
        dcgan = BareStep(res, CHANNELS, BATCH)
        base = dcgan.seconds(args.steps)
        rows.append(f"| {res} | DCGAN defaults (width {dcgan.width}) | {base:.3f} | {BATCH / base:.0f} | 1.00 |")
        for width in widths:
            s = stylegan_step(res, width).seconds(args.steps)
            rows.append(f"| {res} | StyleGAN width {width} | {s:.3f} | {BATCH / s:.0f} | {s / base:.1f}x |")
            print(rows[-1], flush=True)
    vgg = load_vgg19()
    proj = ["| res | seconds / projection step |", "|---|---|"]
    for res in resolutions:
        proj.append(f"| {res} | {projection_seconds(res, args.project_steps, vgg):.3f} |")
        print(proj[-1], flush=True)
    command = "python benchmarks/stylegan_cost.py " + " ".join(sys.argv[1:])
    text = "\n".join([
        "# StyleGAN cost on the CPU", "",
        f"Date: {datetime.date.today()}. Machine: {machine()}.", f"Command: `{command.strip()}`", "",
        "Training step: the trainer's D phase + G phase (non-saturating loss, no R1 or path-length phase), 3-channel",
        "images, channels-last, median over the steps; DCGAN measured in the same run.", "",
        *rows, "", "Projection (`gansmith.project.project`, W space, default VGG19 layers, default-width G):", "",
        *proj, ""])
    atomic_write_text(HERE / "results" / "stylegan_cost.md", text)
    print(text)


if __name__ == "__main__":
    main()
