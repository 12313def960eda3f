"""Do two versions of gansmith train the same networks? Trains each configuration with each source tree, in its
own process, and compares the final checkpoints bit for bit (G, D, EMA).

    python benchmarks/same_weights.py OLD_SOURCE_TREE NEW_SOURCE_TREE [--work DIR]

A source tree is a checkout of this repository (e.g. `git worktree add /tmp/old COMMIT`). Used to show that a
refactoring changed no behaviour: benchmarks/results/same_weights.md.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

CONFIGS = {
    "defaults, 28 px gray (depth 1, EMA, standing statistics)": {},
    "32 px colour: hinge, R1, balance, DiffAugment, lr decay": {
        "loss": "hinge", "r1": 1.0, "r1_every": 4, "balance": True, "augment": "translation,cutout,color",
        "lr_decay": "linear"},
    "wgan-gp, d-steps 2, instance noise, label-free": {"loss": "wgan-gp", "d_steps": 2, "instance_noise": 0.1},
    "progressive growing, 32 px colour": {"arch": "progressive", "phase_kimg": 0.2},
    "ns with label smoothing, mbstd, pack 2, spectral norm": {"label_smooth": 0.1, "mbstd": True, "pack": 2,
                                                              "sn": True},
}
CHILD = """
import sys, json
sys.path.insert(0, sys.argv[1])
from gansmith.training import TrainConfig, train
options = json.loads(sys.argv[4])
print(train(TrainConfig(data=sys.argv[2], out=sys.argv[3], kimg=0.8, report=False, seed=5, **options),
            progress=False).checkpoint)
"""


def colour_data(work: Path) -> Path:
    path = work / "colour.npz"
    if not path.exists():
        rng = np.random.default_rng(0)
        x = np.zeros((256, 32, 32, 3), np.uint8)
        for i in range(len(x)):
            s = rng.integers(6, 20)
            y0, x0 = rng.integers(0, 32 - s, size=2)
            x[i, y0:y0 + s, x0:x0 + s] = rng.integers(0, 256, 3)
        np.savez(path, x=x)
    return path


def train_with(tree: str, data: str, out: Path, options: dict) -> Path:
    """Train with the source tree in a fresh process; a run already in `out` is reused."""
    finished = sorted((out / "checkpoints").glob("step-*.pt"))
    if finished:
        return finished[-1]
    done = subprocess.run([sys.executable, "-c", CHILD, tree, data, str(out), json.dumps(options)],
                          capture_output=True, text=True, check=True)
    return Path(done.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--work", default="/tmp/gansmith-same-weights")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print("| configuration | steps | G | D | EMA of G |\n|---|---|---|---|---|")
    for i, (name, options) in enumerate(CONFIGS.items()):
        data = "builtin:fashion-mnist" if i < 1 or "wgan" in name or "smoothing" in name else str(colour_data(work))
        a, b = (torch.load(train_with(tree, data, work / f"{tag}-{i}", options), weights_only=True)
                for tag, tree in (("old", args.old), ("new", args.new)))
        same = [all(torch.equal(a[k][n], b[k][n]) for n in a[k]) if a[k] is not None else "-" for k in ("G", "D", "G_ema")]
        print(f"| {name} | {a['step']} / {b['step']} | " + " | ".join(str(s) for s in same) + " |", flush=True)


if __name__ == "__main__":
    main()
