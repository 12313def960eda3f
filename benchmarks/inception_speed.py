"""Images/s of the FID Inception network: the shipped TorchScript file vs gansmith's port, optimization by
optimization, measured in one run so that the ratios hold even on a shared, noisy machine.

    PYTHONPATH=. python benchmarks/inception_speed.py [--images 32] [--repeats 3]

Every variant runs `--repeats` times, interleaved with the others (round-robin), on the same random batch of
images already mapped to the network's input range; preprocessing is excluded. Reported: the median and the
best images/s, the speed relative to the TorchScript file, and the max abs difference of its features from the
TorchScript file's. The table goes to stdout and to benchmarks/results/inception_speed.md.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from gansmith.metrics import FEATURE_BATCH, inception

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "inception_speed.md"
EQUAL_FEATURES = 1e-4  # the bar: a faster variant must give the same features to this


class ConvBNReLU(nn.Module):
    """The port's unit *without* batch-norm folding (what the TorchScript file computes), for comparison."""

    def __init__(self, unit):
        super().__init__()
        w = unit.weight
        self.conv = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=unit.stride,
                              padding=unit.padding, bias=False)
        self.bn = nn.BatchNorm2d(w.shape[0], eps=inception.BN_EPS, affine=True)
        with torch.no_grad():
            self.conv.weight.copy_(w)
            self.bn.weight.fill_(1)
            self.bn.bias.copy_(unit.beta)
            self.bn.running_mean.copy_(unit.mean)
            self.bn.running_var.copy_(unit.var)

    def forward(self, x):
        return torch.relu_(self.bn(self.conv(x)))


def unfolded_port(scripted) -> nn.Module:
    port = inception.InceptionFeatures()
    for name, unit in scripted.net.named_modules():
        if unit.original_name == "Conv2dLayer":
            parent_name, _, child = name.rpartition(".")
            setattr(port.get_submodule(parent_name), child, ConvBNReLU(unit))
    return port.eval().requires_grad_(False)


def folded_port(scripted, channels_last: bool) -> nn.Module:
    port = inception.InceptionFeatures()
    inception.copy_weights(port, scripted)
    port = port.eval().requires_grad_(False)
    return port.to(memory_format=torch.channels_last) if channels_last else port


def frozen(port: nn.Module):
    """torch.jit.freeze + optimize_for_inference (conv/BN folding and MKLDNN layouts by the JIT)."""
    scripted_layers = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(port.layers)))
    return lambda x: scripted_layers(x).flatten(1)


class Variant:
    def __init__(self, name, fn, batch=32, channels_last=False, threads=None, grad_mode="inference_mode",
                 autocast_bf16=False, repeated=True):
        self.name, self.fn, self.batch, self.channels_last = name, fn, batch, channels_last
        self.threads, self.grad_mode, self.autocast_bf16, self.repeated = threads, grad_mode, autocast_bf16, repeated
        self.speeds: list[float] = []
        self.max_diff = float("nan")

    @contextlib.contextmanager
    def context(self):
        old_threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        grad = torch.inference_mode() if self.grad_mode == "inference_mode" else torch.no_grad()
        cast = torch.autocast("cpu", dtype=torch.bfloat16) if self.autocast_bf16 else contextlib.nullcontext()
        try:
            with grad, cast:
                yield
        finally:
            torch.set_num_threads(old_threads)

    def prepare(self, x):
        return x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def run(self, x) -> torch.Tensor:
        with self.context():
            return torch.cat([self.fn(self.prepare(x[i:i + self.batch])).float() for i in range(0, len(x), self.batch)])

    def measure(self, x) -> None:
        start = time.perf_counter()
        self.run(x)
        self.speeds.append(len(x) / (time.perf_counter() - start))


def build_variants(scripted) -> list[Variant]:
    cl = folded_port(scripted, channels_last=True)
    nchw = folded_port(scripted, channels_last=False)
    return [
        Variant("TorchScript file as shipped (batch 32, NCHW)", scripted),
        Variant("port, BN not folded (batch 32, NCHW)", unfolded_port(scripted)),
        Variant("port, BN folded (batch 32, NCHW)", nchw),
        Variant(f"port, BN folded + channels_last (batch {FEATURE_BATCH}) = gansmith", cl, batch=FEATURE_BATCH,
                channels_last=True),
        Variant("  same, no_grad instead of inference_mode", cl, batch=FEATURE_BATCH, channels_last=True,
                grad_mode="no_grad"),
        *(Variant(f"  same, batch {b}", cl, batch=b, channels_last=True)
          for b in (8, 16, 32, 64) if b != FEATURE_BATCH),
        Variant("  same, torch.set_num_threads(1)", cl, batch=FEATURE_BATCH, channels_last=True, threads=1),
        Variant("  same, + torch.jit.freeze + optimize_for_inference", frozen(nchw)),
        Variant("  same, bf16 autocast (batch 4, measured once)", cl, batch=4, channels_last=True,
                autocast_bf16=True, repeated=False),
    ]


def conv_flops(port: nn.Module) -> float:
    """Floating-point operations (2 per multiply-add) of one 299 x 299 image through the port's convolutions."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        total += 2 * output.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]

    hooks = [m.register_forward_hook(count) for m in port.modules() if isinstance(m, nn.Conv2d)]
    with torch.inference_mode():
        port(torch.zeros(1, 3, 299, 299))
    for h in hooks:
        h.remove()
    return float(total)


def gemm_gflops(size: int = 2048, reps: int = 5) -> float:
    """Best-of-3 float32 matrix-product speed, the practical ceiling for convolutions on this CPU."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * size ** 3 * reps / (time.perf_counter() - start) / 1e9)
    return best


def table(variants: list[Variant], reference_speed: float) -> str:
    rows = ["| variant | median img/s | best img/s | vs TorchScript (median) | max abs feature diff |",
            "|---|---:|---:|---:|---:|"]
    for v in variants:
        med = statistics.median(v.speeds)
        rows.append(f"| {v.name} | {med:.2f} | {max(v.speeds):.2f} | {med / reference_speed:.2f}x | "
                    f"{v.max_diff:.1e} |")
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="images per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the markdown table")
    args = parser.parse_args()

    torch.manual_seed(0)
    x = torch.rand(args.images, 3, 299, 299) * (1 + 0.9921875) - 1
    check = x[:4]
    scripted = inception.load_torchscript()
    variants = build_variants(scripted)
    with torch.inference_mode():
        reference = scripted(check.contiguous())
    for v in variants:
        v.max_diff = (v.run(check) - reference).abs().max().item()  # also the warm-up run

    load_before = os.getloadavg()
    started = time.time()
    for repeat in range(args.repeats):
        for v in variants:
            if v.repeated or repeat == 0:
                v.measure(x if v.repeated else check)
        print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)
    load_after = os.getloadavg()
    flops, gflops = conv_flops(variants[3].fn), gemm_gflops()
    best = max(max(v.speeds) for v in variants if v.max_diff <= EQUAL_FEATURES)

    report = "\n".join([
        "# Inception (FID network) speed",
        "",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine()}",
        f"- load average (1/5/15 min) before: {'/'.join(f'{l:.1f}' for l in load_before)}, "
        f"after: {'/'.join(f'{l:.1f}' for l in load_after)} (more than 1 per core: other jobs shared the CPU)",
        f"- {args.images} images of 299 x 299 per measurement, {args.repeats} interleaved repeats, "
        f"{time.time() - started:.0f} s in total; preprocessing excluded",
        f"- command: `PYTHONPATH=. python benchmarks/inception_speed.py --images {args.images} "
        f"--repeats {args.repeats}`",
        "",
        table(variants, statistics.median(variants[0].speeds)),
        "",
        f"Ceiling: one image is {flops / 1e9:.2f} GFLOP of convolutions; float32 matrix products ran at "
        f"{gflops:.0f} GFLOP/s (best of 3, 2048 x 2048, right after the table), so even at full GEMM efficiency "
        f"this CPU could do about {gflops * 1e9 / flops:.1f} images/s; the best variant with features equal to "
        f"{EQUAL_FEATURES:g} reached {best:.2f} images/s ({best * flops / 1e9 / gflops:.0%} of that). 15 images/s "
        f"would need {15 * flops / 1e9:.0f} GFLOP/s, {15 * flops / 1e9 / gflops:.0%} of the matmul figure.",
        "",
    ])
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)


if __name__ == "__main__":
    main()
