"""What one style-transfer evaluation (VGG19 forward and backward to the image) costs, and what makes it
cheaper: the network cut at the deepest layer used (relu5_1) against the whole of it, the style targets
computed once per level against recomputed at every evaluation, and bf16 autocast against float32.
Times are CPU seconds of this single-threaded process (time.process_time), which other jobs on a shared
CPU disturb far less than wall time. bf16 is measured at a smaller size (--bf16-size): where the CPU has no
native bf16 it is emulated and very slow.

    python benchmarks/style_evaluation.py --size 256 --evals 3 --bf16-size 32
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
from gansmith.style.stylize import Settings, load_image, to_tensor  # noqa: E402
from gansmith.style.vgg import load_vgg19  # noqa: E402

CONTENT = ROOT / "gansmith/style/examples/astronaut.jpg"
STYLE = ROOT / "gansmith/style/examples/starry_night.jpg"


def inputs(size: int):
    """Content, style and a starting image (the content plus noise) at `size`."""
    content_img, style_img = load_image(CONTENT), load_image(STYLE)
    hw = fit_long_side(content_img.size, size)
    content, style = to_tensor(content_img, hw), to_tensor(style_img, fit_long_side(style_img.size, max(hw)))
    image = content + torch.randn(content.shape, generator=torch.Generator().manual_seed(0)) * 10
    return content, style, image


def default_weights() -> Weights:
    s = Settings()
    return Weights(content={k: s.content_weight * v for k, v in s.content_layers.items()},
                   style={k: s.style_weight * v for k, v in s.style_layers.items()}, tv=s.tv_weight)


def cpu_seconds(run, image, evals: int) -> list[float]:
    run(image)   # warm-up: oneDNN picks its kernels on the first call
    times = []
    for _ in range(evals):
        start = time.process_time()
        run(image)
        times.append(time.process_time() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--evals", type=int, default=3)
    parser.add_argument("--bf16-size", type=int, default=32)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/style_evaluation.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, weights = load_vgg19(), default_weights()
    content, style, image = inputs(args.size)
    grams = style_targets(model, [style], [1.0], weights.style)
    default = Objective(model, content, grams, weights)
    deep = Weights(content=weights.content, style={**weights.style, "relu5_4": 0.0}, tv=weights.tv)
    whole = Objective(model, content, style_targets(model, [style], [1.0], deep.style), deep)  # relu5_4: weight 0

    def targets_every_time(x):
        style_targets(model, [style], [1.0], weights.style)
        return default.evaluate(x)

    rows = [(f"{args.size} px, fp32, cut at relu5_1, targets once (default)",
             cpu_seconds(default.evaluate, image, args.evals)),
            (f"{args.size} px, whole network (to relu5_4)", cpu_seconds(whole.evaluate, image, args.evals)),
            (f"{args.size} px, style targets every evaluation", cpu_seconds(targets_every_time, image, args.evals))]
    small_content, small_style, small_image = inputs(args.bf16_size)
    for bf16 in (False, True):
        objective = Objective(model, small_content,
                              style_targets(model, [small_style], [1.0], weights.style, bf16=bf16), weights, bf16=bf16)
        rows.append((f"{args.bf16_size} px, {'bf16 autocast' if bf16 else 'fp32'}",
                     cpu_seconds(objective.evaluate, small_image, 1)))
    lines = ["# Cost of one style-transfer evaluation", "",
             f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
             f"- machine: {machine()}; native bf16 (AVX512-BF16): {torch.cpu._is_avx512_bf16_supported()}",
             f"- command: `python benchmarks/style_evaluation.py {' '.join(sys.argv[1:])}`",
             "- shipped example, default layers; CPU seconds of one thread per evaluation (loss and gradient), "
             "after one warm-up; the CPU was shared with other jobs", "",
             "| arm | best CPU s | evaluations | vs the first row of its size |", "| --- | --- | --- | --- |"]
    reference = {}
    for name, times in rows:
        size = name.split(" px")[0]
        reference.setdefault(size, min(times))
        lines.append(f"| {name} | {min(times):.3f} | {len(times)} | {min(times) / reference[size]:.2f}x |")
    report = "\n".join(lines) + "\n"
    Path(args.out).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
