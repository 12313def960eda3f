"""How close gansmith trains to the machine's limit, measured in one run (ratios survive a noisy machine).

    python benchmarks/throughput.py [--res 28,64] [--scaling] [--leak-steps 1000,10000]

1. The machine's achievable fp32 FLOP/s: the best of several large square matmuls.
2. For each resolution and batch (--batches), gansmith's DCGAN at its defaults (built by gansmith.models from
   TrainConfig(arch="dcgan")):
   - the bare step: exactly the trainer's D phase + G phase (gansmith.training.step) on a fixed batch,
     timed after warm-up; FLOPs per step counted with torch.utils.flop_counter -> achieved FLOP/s and its
     share of the matmul figure;
   - the full loop: `gansmith.training.train` (data, EMA, doctor, logging, sample grids, checkpoints)
     for --loop-seconds, images/s in wall time after the first log interval -> share of the bare step.
3. --scaling: bare-step time vs resolution (28, 64, 128, 256) and vs batch size (16, 64, 256) at 64 px.
4. Memory: peak RSS of the full loop (each run in its own process); leaks: peak RSS of a narrow, fast
   training run (28 px, width 16, batch 64) after 1,000 and after 10,000 steps must not grow.
Writes benchmarks/results/throughput.md (and scaling.md + scaling.png with --scaling).
"""
from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from time_to_quality import write_keeping_notes  # noqa: E402
from common import machine  # noqa: E402

from gansmith.fileio import atomic_write_text  # noqa: E402
from gansmith.models import build_discriminator, build_generator  # noqa: E402
from gansmith.training import TrainConfig  # noqa: E402
from gansmith.training.config import resolve  # noqa: E402
from gansmith.system import amp_by_default  # noqa: E402
from gansmith.training.step import DiscriminatorView, Phases, adam, discriminator_phase, generator_phase  # noqa: E402


def matmul_flops(n: int = 4096, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class BareStep:
    """The trainer's two phases on a fixed real batch, nothing else; channels-last and in the trainer's default
    precision (bf16 autocast on CPUs with AVX512-BF16), like the trainer. channels_last=False: the NCHW layout,
    amp=False: float32, for comparison."""

    def __init__(self, res: int, channels: int, batch: int, channels_last: bool = True, amp: bool | None = None,
                 **options):
        cfg = resolve(TrainConfig(arch="dcgan", batch=batch, **options), res, channels)
        torch.manual_seed(0)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.G, self.D = build_generator(cfg).to(memory_format=fmt), build_discriminator(cfg).to(memory_format=fmt)
        self.G_params = list(self.G.parameters())
        cpu = torch.device("cpu")
        self.opt_G = adam(self.G.parameters(), cfg.g_lr, (cfg.beta1, cfg.beta2), cpu)
        self.opt_D = adam(self.D.parameters(), cfg.d_lr, (cfg.beta1, cfg.beta2), cpu)
        amp = amp_by_default(cpu) if amp is None else amp
        self.phases = Phases.from_config(cfg, amp_dtype=torch.bfloat16 if amp else None)
        self.view = DiscriminatorView()
        self.rng = torch.Generator().manual_seed(0)
        self.real = (torch.rand(batch, channels, res, res) * 2 - 1).contiguous(memory_format=fmt)
        self.batch, self.z_dim, self.width = batch, cfg.z_dim, cfg.width
        self.d_lr, self.betas = cfg.d_lr, (cfg.beta1, cfg.beta2)

    def __call__(self):
        fake = self.G(torch.randn(self.batch, self.z_dim))
        discriminator_phase(self.phases, self.D, self.G, self.opt_D, self.real, fake.detach(), self.view, self.rng, 1)
        generator_phase(self.phases, self.D, self.G, self.opt_G, self.G_params, fake, self.real, self.view, self.rng, 1)

    def flops(self) -> int:
        with FlopCounterMode(display=False) as counter:
            self()
        return counter.get_total_flops()

    def seconds(self, steps: int = 100, warmup: int = 3) -> float:
        """Median seconds per step after the warm-up steps."""
        for _ in range(warmup):
            self()
        return float(np.median([_timed(self) for _ in range(steps)]))


LEAK_BATCH = 64


# `gansmith train` in a child process that reports its own peak RSS
CHILD = """
import resource, runpy, sys
sys.argv = ["gansmith", "train", *sys.argv[1:]]
try:
    runpy.run_module("gansmith", run_name="__main__")
finally:
    print("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def train_child(data: Path, out: Path, *options) -> tuple[list[dict], float]:
    """Run `gansmith train DATA --out OUT OPTIONS` in a fresh process -> (metrics lines, peak RSS MB)."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(data), "--out", str(out), "--no-report", "--quiet",
                           *map(str, options)], capture_output=True, text=True, check=True)
    peak = float(done.stdout.split("peak_rss_mb")[-1])
    return [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()], peak


def random_data(work: Path, res: int, channels: int) -> Path:
    data = work / f"random-{res}-{channels}.npz"
    if not data.exists():
        rng = np.random.default_rng(0)
        np.savez(data, x=rng.integers(0, 256, (2000, res, res, channels), dtype=np.uint8))
    return data


def loop_run(res: int, channels: int, batch: int, seconds: float, work: Path) -> tuple[float, float]:
    """(images/s of the whole training loop in wall time, after its first log interval; peak RSS MB).

    Each metrics line's img_per_s is the wall-clock rate since the previous line, so it includes everything
    the loop does between steps (logging, the doctor, sample grids, checkpoints); the `seconds` field counts
    the training steps alone and would flatter the loop."""
    lines, peak = train_child(random_data(work, res, channels), work / f"loop-{res}-{batch}", "--arch", "dcgan",
                              "--batch", batch, "--minutes", seconds / 60, "--log-every", 0.256)
    images = [(b["kimg"] - a["kimg"]) * 1000 for a, b in zip(lines, lines[1:])]
    wall = sum(n / line["img_per_s"] for n, line in zip(images, lines[1:]))
    return sum(images) / wall, peak


def measure_row(res: int, batch: int, loop_seconds: float, peak: float, work: Path) -> str:
    channels = 1 if res == 28 else 3
    step = BareStep(res, channels, batch)
    flops, seconds = step.flops(), step.seconds()
    nchw = BareStep(res, channels, batch, channels_last=False).seconds()
    fp32 = BareStep(res, channels, batch, amp=False).seconds() if step.phases.amp_dtype else seconds
    bare = batch / seconds
    loop_cells = "— | — | —"
    if loop_seconds:
        loop, rss = loop_run(res, channels, batch, loop_seconds, work)
        loop_cells = f"{loop:.0f} | {loop / bare:.0%} | {rss:.0f}"
    return (f"| {res} | {channels} | {step.width} | {batch} | {flops / 1e9:.2f} | {fp32:.3f} | {nchw:.3f} | {seconds:.3f} | "
            f"{flops / seconds / 1e9:.0f} | {flops / seconds / peak:.0%} | {bare:.0f} | {loop_cells} |")


def leak_check(work: Path, steps: list[int]) -> list[str]:
    lines = ["## Memory over training length (28 px, width 16, batch 64, each run in a fresh process)", "",
             "| steps | peak RSS MB |", "|---|---|"]
    for n in steps:
        _, peak = train_child(random_data(work, 28, 1), work / f"leak-{n}", "--width", 16, "--batch", LEAK_BATCH,
                              "--kimg", n * LEAK_BATCH / 1000,
                              "--checkpoint-every", 64)
        lines.append(f"| {n} | {peak:.0f} |")
        print(lines[-1], flush=True)
    return lines


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--res", default="28,64")
    p.add_argument("--batches", default="16,64", help="comma-separated batch sizes (the bare step and the loop "
                   "run at the same batch; the default at <= 64 px is 16)")
    p.add_argument("--loop-seconds", type=float, default=60, help="0: the bare step only")
    p.add_argument("--scaling", action="store_true")
    p.add_argument("--leak-steps", default="1000,10000", help="comma-separated step counts ('' to skip)")
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args()
    out = Path(args.out)
    peak = matmul_flops()
    bf16 = amp_by_default(torch.device("cpu"))
    precision = (f"bf16 autocast, this CPU's default (bf16 matmul: {matmul_flops(dtype=torch.bfloat16) / 1e9:.0f} "
                 "GFLOP/s; the share below is of the fp32 figure)" if bf16 else "float32, this CPU's default")
    lines = ["# Throughput: how close to the machine's limit", "", f"{datetime.date.today()} · {machine()}", "",
             f"Command: `python benchmarks/throughput.py {' '.join(sys.argv[1:])}`", "",
             f"Achievable fp32 matmul (4096², best of 5): **{peak / 1e9:.0f} GFLOP/s**. Step precision: {precision}.",
             "", "| res | channels | width | batch | GFLOP / step | bare step s (fp32) | bare step s (NCHW) | bare step s | "
             "bare GFLOP/s | share of matmul | bare img/s | full loop img/s | loop / bare | loop peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    if args.scaling:  # its own file, so `--res "" --leak-steps "" --scaling` leaves the main table alone
        atomic_write_text(out / "scaling.md", "\n".join(lines[:8] + scaling_table(peak, out)) + "\n")
    if not args.res:
        return
    with tempfile.TemporaryDirectory() as work:
        for res in map(int, args.res.split(",")):
            for batch in map(int, args.batches.split(",")):
                lines.append(measure_row(res, batch, args.loop_seconds, peak, Path(work)))
                print(lines[-1], flush=True)
        if args.leak_steps:
            lines += ["", *leak_check(Path(work), [int(n) for n in args.leak_steps.split(",")])]
    write_keeping_notes(out / "throughput.md", lines)


def scaling_table(peak: float, out: Path) -> list[str]:
    lines = ["## Scaling (bare DCGAN step, default width 64, 3 channels)", "",
             "| res | batch | GFLOP / step | s / step | img/s | share of matmul |", "|---|---|---|---|---|---|"]
    timings = []
    for res, batch in [(28, 64), (64, 64), (128, 64), (256, 64), (64, 16), (64, 256)]:
        step = BareStep(res, 3, batch)
        big = res >= 128  # seconds to minutes per step: fewer repeats (the FLOP count already ran one step)
        flops, seconds = step.flops(), step.seconds(steps=2 if big else 10, warmup=1 if big else 2)
        timings.append((res, batch, seconds))
        lines.append(f"| {res} | {batch} | {flops / 1e9:.1f} | {seconds:.3f} | {batch / seconds:.0f} | "
                     f"{flops / seconds / peak:.0%} |")
        print(lines[-1], flush=True)
    plot_scaling(timings, out / "scaling.png")
    return lines + ["", "![scaling](scaling.png)"]


def plot_scaling(timings: list[tuple[int, int, float]], path: Path) -> None:
    """Step time vs resolution (batch 64) and vs batch (64 px), log-log, ticks at the measured values."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    by_res = sorted((r, s) for r, bt, s in timings if bt == 64)
    by_batch = sorted((bt, s) for r, bt, s in timings if r == 64)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, points, xlabel, ylabel, title in (
            (axes[0], by_res, "resolution (px)", "seconds per step (batch 64)", "step time vs resolution"),
            (axes[1], by_batch, "batch size", "seconds per step (64 px)", "step time vs batch")):
        ax.loglog([x for x, _ in points], [y for _, y in points], "o-")
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        ax.set_xticks([x for x, _ in points])
        ax.set_yticks([y for _, y in points])
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(FormatStrFormatter("%.3g"))
            axis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
