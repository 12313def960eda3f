"""The textbook baseline for style transfer, as in the PyTorch tutorial "Neural Transfer Using PyTorch":
single scale, start from the content image, `torch.optim.LBFGS([img])` with its defaults (max_iter=20, no
line search), clamping in the closure, stopping after a number of closure evaluations.

It uses gansmith's VGG19 and loss (`losses.Objective` with the default layers and weights) so that its loss
and gansmith's are the same number; only the optimization procedure differs.

    python benchmarks/style_baseline.py --size 512 --evals 300 -o baseline.png
"""
from __future__ import annotations

import argparse
import time

import torch

from gansmith.style.losses import Objective, Weights, style_targets
from gansmith.style.plan import fit_long_side
from gansmith.style.stylize import Settings, load_image, tensor_to_pil, to_tensor
from gansmith.style.vgg import load_vgg19


def default_objective(model, content_img, style_img, size: int) -> tuple[Objective, torch.Tensor]:
    """The objective of gansmith's defaults at one size, and the content tensor at that size."""
    s = Settings()
    hw = fit_long_side(content_img.size, size)
    content = to_tensor(content_img, hw)
    style = to_tensor(style_img, fit_long_side(style_img.size, max(hw)))
    weights = Weights(content={k: s.content_weight * v for k, v in s.content_layers.items()},
                      style={k: s.style_weight * v for k, v in s.style_layers.items()}, tv=s.tv_weight)
    return Objective(model, content, style_targets(model, [style], [1.0], weights.style), weights), content


def run_baseline(model, content_img, style_img, size: int, evals: int, on_eval=None) -> torch.Tensor:
    """The tutorial's loop; `on_eval(n, total_loss)` after each closure evaluation. Returns the image."""
    objective, content = default_objective(model, content_img, style_img, size)
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image])
    run = [0]
    while run[0] < evals:
        def closure():
            with torch.no_grad():
                image.clamp_(0, 255)
            optimizer.zero_grad()
            total, _ = objective(image)
            total.backward()
            run[0] += 1
            if on_eval is not None:
                on_eval(run[0], float(total.detach()))
            return total
        optimizer.step(closure)
    with torch.no_grad():
        image.clamp_(0, 255)
    return image.detach()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", default="gansmith/style/examples/astronaut.jpg")
    parser.add_argument("--style", default="gansmith/style/examples/starry_night.jpg")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--evals", type=int, default=300)
    parser.add_argument("-o", "--output", default="baseline.png")
    args = parser.parse_args()
    start = time.perf_counter()
    image = run_baseline(load_vgg19(), load_image(args.content), load_image(args.style), args.size, args.evals,
                         on_eval=lambda n, loss: print(f"{n} {time.perf_counter() - start:.1f}s {loss:.4f}"))
    tensor_to_pil(image).save(args.output)


if __name__ == "__main__":
    main()
