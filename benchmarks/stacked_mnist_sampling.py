"""How a finished Stacked MNIST run is sampled changes its KL: the EMA weights with batch-norm statistics copied
from the trained G (what gansmith does), the EMA weights with standing statistics (recomputed for them, BigGAN), and
G's own weights.

    python benchmarks/stacked_mnist_sampling.py --work WORK CHECKPOINT [CHECKPOINT ...]

WORK is a work folder of benchmarks/stacked_mnist.py (its cached classifier is used); each CHECKPOINT is a run
folder or checkpoint file. Prints one line per checkpoint: the KL to uniform of 26,000 samples (the benchmark's
seed) for each way of sampling.
"""
import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stacked_mnist import CLASSIFIER_FILE, SAMPLE_SEED, classifier, mode_stats  # noqa: E402

from gansmith.generate import generate_images, load_generator  # noqa: E402


@torch.no_grad()
def use_standing_statistics(G: nn.Module, batches: int = 200, batch: int = 16) -> None:
    """Replace G's batch-norm running statistics by their cumulative average over `batches` fresh batches."""
    for m in G.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    G.train()
    rng = torch.Generator().manual_seed(0)
    for _ in range(batches):
        G(torch.randn(batch, G.z_dim, generator=rng))
    G.eval()


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
        copied = kl(load_generator(ckpt)[0])
        G = load_generator(ckpt)[0]
        use_standing_statistics(G)
        standing = kl(G)
        own = kl(load_generator(ckpt, ema=False)[0])
        print(f"{Path(ckpt).name}: EMA, copied statistics {copied:.3f} | EMA, standing statistics {standing:.3f} | "
              f"G's own weights {own:.3f}", flush=True)


if __name__ == "__main__":
    main()
