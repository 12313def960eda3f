"""A first look at the projected discriminator in the real training loop, at the same number of images shown.

    python benchmarks/projected_smoke.py --kimg 10 --out DIR [--augment POLICY] [--n 5000] [--work DIR]

Trains the trainer's defaults on the built-in Fashion-MNIST twice for the same number of images, once with its
DCGAN discriminator and once with `--d-arch projected`, then scores both generators (EMA weights) with the Fashion-MNIST classifier's
Fréchet distance (benchmarks/fashion_classifier.py), which an ImageNet-feature D cannot game. Prints the distances
and the training wall time (the cost per step is projected_cost.py's job); sample grids are in
DIR/*/samples/latest.png. A run folder that exists is resumed (a finished one is only scored).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import machine  # noqa: E402
from fashion_classifier import fashion_fd  # noqa: E402

from gansmith.generate import generate_images, load_generator  # noqa: E402
from gansmith.training import TrainConfig, train  # noqa: E402


def train_with(out: Path, kimg: float, d_arch: str, augment: str) -> None:
    """Train the defaults with the given discriminator; a finished run folder is reused."""
    train(TrainConfig(data="builtin:fashion-mnist", out=str(out), kimg=kimg, augment=augment, report=False,
                      d_arch=d_arch), resume=(out / "checkpoints").is_dir(), progress=True)


def score(out: Path, n: int, work: Path | None) -> float:
    G, _ = load_generator(out)
    return fashion_fd(generate_images(G, n), work, progress=False)["fd"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kimg", type=float, default=10)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--augment", default="", help="DiffAugment policy for both runs, e.g. translation,color,cutout")
    parser.add_argument("--n", type=int, default=5000, help="generated images scored per run")
    parser.add_argument("--work", type=Path, help="where the classifier is cached (see fashion_classifier.py)")
    args = parser.parse_args()
    print(machine())
    for name, d_arch in (("dcgan-d", "auto"), ("projected-d-64", "projected")):
        train_with(args.out / name, args.kimg, d_arch, args.augment)
        line = json.loads((args.out / name / "metrics.jsonl").read_text().splitlines()[-1])
        print(f"{name}: {line['kimg']} kimg, {line['seconds']:.0f} s of training (wall), "
              f"classifier FD {score(args.out / name, args.n, args.work):.3f} ({args.n} images)", flush=True)


if __name__ == "__main__":
    main()
