"""Should gansmith turn DiffAugment on by itself for small data sets? Train on the first N Fashion-MNIST images with
and without augmentation for the same CPU budget, and score what an augmentation can change:

    python benchmarks/small_data_augment.py --sizes 100,1000 --cpu-minutes 5 [--augment translation,cutout,color]

- classifier FD: Fréchet distance between 5,000 generated images and the 10,000 Fashion-MNIST test images in the
  features of the project's own Fashion-MNIST classifier (benchmarks/fashion_classifier.py). The test images were
  never trained on, so this measures the distribution, not the N images.
- copying: gansmith's memorization ratio (gansmith/metrics/nearest.py) of 1,000 generated images against the N
  training images in pixel space, median (about 1 for new images, near 0 for copies), and the fraction below 0.5.
- the reference row "real": the classifier FD of the N training images themselves (what a generator copying them
  perfectly would score) and the copying ratio of 1,000 unseen test images (what new real images score).

Each run is `gansmith train` under benchmarks/cpu_clock.py (1 thread, seed 0). Results: a markdown table on stdout
and in --out (default benchmarks/results/small_data_augment.md), grids beside it.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import machine  # noqa: E402
from fashion_classifier import fashion_fd, fashion_mnist  # noqa: E402

from gansmith.fileio import atomic_save_image, atomic_write_text  # noqa: E402
from gansmith.generate import generate_images, load_generator  # noqa: E402
from gansmith.images import make_grid, to_pil  # noqa: E402
from gansmith.metrics.nearest import CLOSE_RATIO, nearest_neighbours  # noqa: E402

N_FD = 5000      # generated images for the classifier distance
N_COPY = 1000    # generated images for the copying check
SAMPLE_SEED = 7


def train(npz: Path, out: Path, cpu_minutes: float, flags: list[str]) -> None:
    if (out / "metrics.jsonl").exists():
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(HERE / "cpu_clock.py"), str(npz), "--out", str(out), "--minutes",
                    str(cpu_minutes), "--seed", "0", "--no-report", "--quiet", *flags], check=True, env=env)


def copying(samples: np.ndarray, train_images: np.ndarray) -> dict:
    ratio = nearest_neighbours(samples, train_images).ratio
    return {"copy_ratio_median": float(np.median(ratio)), "copy_close_frac": float((ratio < CLOSE_RATIO).mean())}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="100,1000")
    p.add_argument("--cpu-minutes", type=float, default=5)
    p.add_argument("--augment", default="translation,cutout,color")
    p.add_argument("--work", type=Path, default=Path("/tmp/gansmith-small-data"))
    p.add_argument("--out", type=Path, default=HERE / "results" / "small_data_augment.md")
    args = p.parse_args()
    images, _ = fashion_mnist("train")  # uint8 N x 28 x 28 x 1
    unseen = fashion_mnist("test")[0][:N_COPY]
    rows = []
    for size in map(int, args.sizes.split(",")):
        subset = images[:size]
        npz = args.work / f"fashion-{size}.npz"
        npz.parent.mkdir(parents=True, exist_ok=True)
        if not npz.exists():
            np.savez(npz, x=subset)
        rows.append({"n": size, "arm": "real (FD: the training images; copying: unseen test images)",
                     "fd": fashion_fd(subset)["fd"], **copying(unseen, subset)})
        for arm, flags in (("--augment none", ["--augment", "none"]), (f"--augment {args.augment}",
                                                                        ["--augment", args.augment])):
            kind = "plain" if flags[1] == "none" else "aug"
            run = args.work / f"fashion-{size}-{kind}-{args.cpu_minutes:g}cpumin"
            train(npz, run, args.cpu_minutes, flags)
            G = load_generator(run)[0]
            fake = generate_images(G, N_FD, seed=SAMPLE_SEED)
            last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
            grid = f"small-data-{size}-{kind}.png"
            atomic_save_image(args.out.parent / grid, to_pil(make_grid(fake[:64])))
            rows.append({"n": size, "arm": arm, "kimg": last["kimg"], "fd": fashion_fd(fake)["fd"],
                         **copying(fake[:N_COPY], subset), "grid": grid})
            print(json.dumps(rows[-1]), flush=True)
    lines = ["# Small data: DiffAugment on or off", "", f"{datetime.date.today()} · {machine()}", "",
             f"Command: `python benchmarks/small_data_augment.py {' '.join(sys.argv[1:])}`", "",
             f"Training on the first N Fashion-MNIST images, {args.cpu_minutes:g} CPU-minutes per run (1 thread, "
             "seed 0). Classifier FD: 5,000 generated vs the 10,000 test images in the project's Fashion-MNIST "
             "classifier's features (lower is better). Copying: memorization ratio of 1,000 generated images to "
             f"the N training images in pixels (median; fraction below {CLOSE_RATIO}).", "",
             "| N | arm | kimg | classifier FD | copy ratio (median) | close copies | grid |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        kimg = f"{r['kimg']:.0f}" if "kimg" in r else ""
        lines.append(f"| {r['n']:,} | {r['arm']} | {kimg} | {r['fd']:.2f} | {r['copy_ratio_median']:.2f} | "
                     f"{r['copy_close_frac']:.1%} | {r.get('grid', '')} |")
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
