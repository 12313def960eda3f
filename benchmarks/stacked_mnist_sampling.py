"""How a finished Stacked MNIST run is sampled changes its KL: the EMA weights with batch-norm statistics copied
from the trained G (what gansmith did before 2026-12-01), the EMA weights with standing statistics (recomputed for
them, BigGAN; gansmith's default at 28 px since), and G's own weights.

    python benchmarks/stacked_mnist_sampling.py --work WORK CHECKPOINT [CHECKPOINT ...]

WORK is a work folder of benchmarks/stacked_mnist.py (its cached classifier is used); each CHECKPOINT is a run
folder or checkpoint file. Prints one line per checkpoint: the KL to uniform of 26,000 samples (the benchmark's
seed) for each way of sampling.
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stacked_mnist import CLASSIFIER_FILE, SAMPLE_SEED, classifier, mode_stats  # noqa: E402

from gansmith.generate import generate_images, load_generator  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--samples", type=int, default=26_000)
    p.add_argument("checkpoints", nargs="+")
    args = p.parse_args()
    net = classifier()
    net.load_state_dict(torch.load(args.work / CLASSIFIER_FILE, weights_only=True)["state"])

    def kl(G):
        return mode_stats(net, generate_images(G, args.samples, seed=SAMPLE_SEED))["kl"]

    for ckpt in args.checkpoints:
        copied = kl(load_generator(ckpt, standing=False)[0])
        standing = kl(load_generator(ckpt, standing=True)[0])
        own = kl(load_generator(ckpt, ema=False)[0])
        print(f"{Path(ckpt).name}: EMA, copied statistics {copied:.3f} | EMA, standing statistics {standing:.3f} | "
              f"G's own weights {own:.3f}", flush=True)


if __name__ == "__main__":
    main()
