"""What one style-transfer evaluation (VGG19 forward and backward to the image) costs, and what makes it
cheaper: bf16 autocast against float32, the network cut at the deepest layer used (relu5_1) against the
whole of it, and the style targets computed once per level against recomputed at every evaluation.
All arms run in one process, interleaved, on the shipped example.

    python benchmarks/style_evaluation.py --size 256 --evals 5
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import machine  # noqa: E402
from gansmith.style.losses import Objective, Weights, style_targets  # noqa: E402
from gansmith.style.plan import fit_long_side  # noqa: E402
from gansmith.style.transfer import Settings, load_image, to_tensor  # noqa: E402
from gansmith.style.vgg import load_vgg19  # noqa: E402

CONTENT = ROOT / "gansmith/style/examples/astronaut.jpg"
STYLE = ROOT / "gansmith/style/examples/starry_night.jpg"


def arms(model, content, style, weights):
    """name -> a function doing one evaluation (loss and gradient)."""
    grams = style_targets(model, [style], [1.0], weights.style)
    fp32 = Objective(model, content, grams, weights)
    bf16 = Objective(model, content, style_targets(model, [style], [1.0], weights.style, bf16=True), weights,
                     bf16=True)

    deep = Weights(content=weights.content, style={**weights.style, "relu5_4": 0.0}, tv=weights.tv)
    whole = Objective(model, content, style_targets(model, [style], [1.0], deep.style), deep)  # relu5_4: weight 0

    def targets_every_time(image):
        style_targets(model, [style], [1.0], weights.style)
        return fp32.evaluate(image)

    return {"fp32, cut at relu5_1, targets once (default)": fp32.evaluate, "bf16 autocast": bf16.evaluate,
            "whole network (to relu5_4)": whole.evaluate, "style targets every evaluation": targets_every_time}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--evals", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/style_evaluation.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    s, model = Settings(), load_vgg19()
    content_img, style_img = load_image(CONTENT), load_image(STYLE)
    hw = fit_long_side(content_img.size, args.size)
    content, style = to_tensor(content_img, hw), to_tensor(style_img, fit_long_side(style_img.size, max(hw)))
    weights = Weights(content={k: s.content_weight * v for k, v in s.content_layers.items()},
                      style={k: s.style_weight * v for k, v in s.style_layers.items()}, tv=s.tv_weight)
    image = content + torch.randn(content.shape, generator=torch.Generator().manual_seed(0)) * 10
    runs = arms(model, content, style, weights)
    times = {name: [] for name in runs}
    for name, run in runs.items():   # warm-up: oneDNN picks its kernels on the first call
        run(image)
    for _ in range(args.evals):      # interleaved, so that load from other jobs hits every arm alike
        for name, run in runs.items():
            start = time.perf_counter()
            run(image)
            times[name].append(time.perf_counter() - start)
    base = min(times[next(iter(times))])
    lines = ["# Cost of one style-transfer evaluation", "",
             f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
             f"- machine: {machine()}; bf16 native: {torch.cpu._is_avx512_bf16_supported()}",
             f"- command: `python benchmarks/style_evaluation.py --size {args.size} --evals {args.evals} "
             f"--threads {args.threads}`",
             f"- {hw[1]}x{hw[0]} px, shipped example, default layers; best of {args.evals} interleaved "
             f"evaluations after one warm-up each (the CPU was shared: the minimum is the least disturbed)", "",
             "| arm | best s | median s | vs default |", "| --- | --- | --- | --- |"]
    for name, t in times.items():
        t = sorted(t)
        lines.append(f"| {name} | {t[0]:.3f} | {t[len(t) // 2]:.3f} | {t[0] / base:.2f}x |")
    report = "\n".join(lines) + "\n"
    Path(args.out).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
