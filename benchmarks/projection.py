"""How closely can each generator reproduce images it never saw? `gansmith.project` of held-out images into
StyleGAN's W+ and W and into DCGAN's z, with the reconstruction distances and the pictures.

    python benchmarks/projection.py --data emoji --runs SG_RUN,DCGAN_RUN [--steps 500] [--spaces w+,w,z]

The runs are trained by benchmarks/arch_cpu_budget.py (`--data emoji-train`, which holds out the targets below,
and `--data fashion`). Targets: the 10 emoji common.emoji_split holds out of training, and the first 10 Fashion-
MNIST test images. Distances: VGG19 perceptual distance (gansmith.project's loss term, lower is closer) and PSNR
in dB on uint8 pixels (higher is closer). Writes benchmarks/results/projection-DATA.md and a picture (rows: the
targets; columns: target, then each projection).
"""
import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import emoji_split, machine  # noqa: E402
from fashion_classifier import fashion_mnist  # noqa: E402

from gansmith.data import load_images  # noqa: E402
from gansmith.fileio import atomic_save_image, atomic_write_text  # noqa: E402
from gansmith.generate import load_generator  # noqa: E402
from gansmith.images import make_grid, to_pil, zoom  # noqa: E402
from gansmith.project import project  # noqa: E402
from gansmith.style.vgg import load_vgg19  # noqa: E402

N_TARGETS = 10


def targets(name: str, work: Path) -> np.ndarray:
    """uint8 N x H x W x C images no model was trained on."""
    if name == "fashion":
        return fashion_mnist("test")[0][:N_TARGETS]
    held_out = load_images(emoji_split(work)[1], progress=False)
    return held_out.x.numpy().transpose(0, 2, 3, 1)[:N_TARGETS]


LABELS = {"w+": "StyleGAN W+", "w": "StyleGAN W", "z": "DCGAN z"}


def arms(runs: str, spaces: str) -> list[tuple[str, Path, str]]:
    """(label, run, latent space): StyleGAN's W+ and W from the first run, DCGAN's z from the second."""
    stylegan, dcgan = map(Path, runs.split(","))
    return [(LABELS[s], dcgan if s == "z" else stylegan, s) for s in spaces.split(",")]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", choices=("emoji", "fashion"), required=True)
    p.add_argument("--runs", required=True, help="StyleGAN run,DCGAN run (emoji: trained on --data emoji-train)")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--spaces", default="w+,w,z")
    p.add_argument("--work", type=Path, default=Path("/tmp/gansmith-cpu-budget"))
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args()
    vgg = load_vgg19()
    lines = ["# Projection: reproducing images no model saw", "", f"{datetime.date.today()} · {machine()}", "",
             f"Command: `python benchmarks/projection.py {' '.join(sys.argv[1:])}`", "",
             f"`gansmith.project`, {args.steps} steps each, seed 0. VGG: the perceptual distance gansmith.project "
             "minimizes (lower is closer); PSNR in dB on uint8 pixels (higher is closer); mean (min-max) over "
             f"{N_TARGETS} targets.", "",
             "| data | generator and latent | VGG distance | PSNR dB | CPU seconds per image | run |",
             "|---|---|---|---|---|---|"]
    name, runs = args.data, args.runs
    images = targets(name, args.work)
    columns = [images]
    for label, run, space in arms(runs, args.spaces):
        G = load_generator(run)[0]
        started, results = time.process_time(), []
        for target in images:
            results.append(project(G, target, steps=args.steps, space=space, vgg=vgg, progress=False))
        seconds = (time.process_time() - started) / len(images)
        vgg_d = np.array([r.vgg_distance for r in results])
        psnr = np.array([r.psnr for r in results])
        columns.append(np.stack([r.image for r in results]))
        lines.append(f"| {name} | {label} | {vgg_d.mean():.4f} ({vgg_d.min():.4f}-{vgg_d.max():.4f}) | "
                     f"{psnr.mean():.2f} ({psnr.min():.2f}-{psnr.max():.2f}) | {seconds:.1f} | `{run.name}` |")
        print(lines[-1], flush=True)
    # one row per target: the target, then its projections
    tiles = np.stack(columns, axis=1).reshape(-1, *images.shape[1:])
    picture = f"projection-{name}.png"
    atomic_save_image(args.out / picture, to_pil(make_grid(zoom(tiles, 2 if name == "emoji" else 4),
                                                           nrow=len(columns))))
    order = ", ".join(LABELS[s] for s in args.spaces.split(","))
    lines.append(f"| {name} | picture: `{picture}` (per row: the target, {order}) | | | | |")
    atomic_write_text(args.out / f"projection-{args.data}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
