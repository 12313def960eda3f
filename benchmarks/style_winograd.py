"""Could Winograd convolutions (Lavin & Gray 2016, F(2x2, 3x3): 2.25x fewer multiplications) make a style
transfer evaluation cheaper on a CPU without native bf16? Each VGG19 layer shape of a 512 px evaluation,
forward and backward to the input (the weights are frozen), one thread, CPU seconds (best of 3):
PyTorch's convolution (NCHW and channels-last) against a Winograd convolution written in PyTorch operations
(input and output transforms as strided slices, one batched matrix product; autograd for the backward).

    python benchmarks/style_winograd.py [--out benchmarks/results/style_winograd.md]
"""
import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

G = torch.tensor([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
SHAPES = [(64, 64, 512), (128, 128, 256), (256, 256, 128), (512, 512, 64)]   # the widest conv of each stage


def kernel_transform(w: torch.Tensor) -> torch.Tensor:
    """G w G^T for every (out, in) pair: 16 x Cin x Cout."""
    return torch.einsum("ik,ockl,jl->ijco", G, w, G).reshape(16, w.shape[1], w.shape[0]).contiguous()


def input_transform(x: torch.Tensor, axis: int) -> list[torch.Tensor]:
    """B^T along one axis of the windows of 4 (stride 2) of a padded map."""
    n = x.shape[axis] - 3
    d = [x.narrow(axis, k, n)[(slice(None),) * axis + (slice(None, None, 2),)] for k in range(4)]
    return [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]


def winograd_conv(x: torch.Tensor, u: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """3x3 convolution, padding 1, of an N x H x W x C map (H, W even)."""
    n, h, w, c = x.shape
    padded = F.pad(x, (0, 0, 1, 1, 1, 1))
    v = torch.stack([col for row in input_transform(padded, 1) for col in input_transform(row, 2)])
    m = torch.bmm(v.reshape(16, -1, c), u).reshape(4, 4, n, h // 2, w // 2, -1)
    rows = [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]                      # A^T along rows, then columns
    y = torch.stack([torch.stack([r[0] + r[1] + r[2], r[1] - r[2] - r[3]]) for r in rows])
    return y.permute(2, 3, 0, 4, 1, 5).reshape(n, h, w, -1) + b


def cpu_seconds(fn, reps: int = 3) -> float:
    best = float("inf")
    for _ in range(reps):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def forward_backward(conv, x: torch.Tensor) -> None:
    x = x.clone().requires_grad_()
    y = conv(x)
    y.backward(torch.ones_like(y))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results/style_winograd.md"))
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    lines = ["# Winograd convolution for style transfer, per VGG19 layer shape", "",
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} · {machine()}", "",
             "Command: `python benchmarks/style_winograd.py`; one thread, forward + backward to the input, CPU "
             "seconds, best of 3 (the CPU was shared; CPU time, not wall time).", "",
             "| conv (in -> out, map) | max relative error | NCHW s | channels-last s | Winograd s | Winograd vs best |",
             "|---|---|---|---|---|---|"]
    for cin, cout, hw in SHAPES:
        w, b = torch.randn(cout, cin, 3, 3) / (cin * 9) ** .5, torch.randn(cout) * .1
        x = torch.randn(1, cin, hw, hw)
        u, nhwc = kernel_transform(w), x.permute(0, 2, 3, 1).contiguous()
        reference = F.conv2d(x, w, b, padding=1)
        error = float((winograd_conv(nhwc, u, b).permute(0, 3, 1, 2) - reference).abs().max() / reference.abs().max())
        conv = lambda t: F.conv2d(t, w, b, padding=1)  # noqa: E731
        nchw = cpu_seconds(lambda: forward_backward(conv, x))
        last = cpu_seconds(lambda: forward_backward(conv, x.contiguous(memory_format=torch.channels_last)))
        wino = cpu_seconds(lambda: forward_backward(lambda t: winograd_conv(t, u, b), nhwc))
        lines.append(f"| {cin} -> {cout}, {hw} x {hw} | {error:.1e} | {nchw:.3f} | {last:.3f} | {wino:.3f} | "
                     f"{wino / min(nchw, last):.2f}x |")
        print(lines[-1], flush=True)
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
