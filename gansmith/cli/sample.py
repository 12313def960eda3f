"""`gansmith sample`: images from a trained run, as one grid or one file per image.

It imports PyTorch only when it runs, so that `gansmith sample --help` answers at once."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from ..errors import UserError
from . import Finite, cli, seed_type


@cli.command(epilog="""\b
Examples:
  gansmith sample runs/shoes -n 64 -o grid.png                 # one grid
  gansmith sample runs/shoes --seeds 0-35 --outdir out/        # out/seed0000.png ... seed0035.png
  gansmith sample runs/sg --seeds 0-7 --trunc 0.7 -o grid.png  # truncation: more typical images""")
@click.argument("run")
@click.option("-n", "--n", "n", type=click.IntRange(min=1), default=64, show_default=True,
              help="number of images (drawn from --seed)")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write one grid PNG here")
@click.option("--outdir", type=click.Path(file_okay=False), help="write each image as its own PNG here")
@click.option("--seed", type=seed_type(), default=0, show_default=True, help="the same seed gives the same images")
@click.option("--seeds", default=None,
              help="one image per seed instead of -n from --seed, e.g. 0-35,40 (stylegan2-ada's convention; "
                   "files seedNNNN.png); seed s stands for torch.randn(1, z_dim, generator=manual_seed(s))")
@click.option("--trunc", type=Finite(min=-2, max=2), default=1.0, show_default=True,
              help="truncation psi: StyleGAN pulls w towards its average w, other models scale z by psi (0: the "
                   "average / z = 0 image, 1: off)")
@click.option("--checkpoint", default="latest", show_default=True, help="latest, best, or a checkpoint path")
@click.option("--no-ema", is_flag=True, help="use the raw generator weights instead of their moving average")
@click.option("--upscale", type=click.IntRange(min=1), default=1, show_default=True,
              help="nearest-neighbour zoom for small images")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda[:N] or mps")
@click.option("--quiet", is_flag=True, help="no progress bar")
def sample(run, n, output, outdir, seed, seeds, trunc, checkpoint, no_ema, upscale, device, quiet):
    """Generate new images from a trained RUN folder (or a checkpoint file)."""
    from ..generate import load_generator
    from ..seeds import parse_seeds
    from ..system import resolve_device
    if not Path(run).exists():
        raise UserError(f"{run} is neither a run folder nor a checkpoint file")
    if not output and not outdir:
        raise UserError("say where the images go: -o grid.png and/or --outdir DIR")
    seed_list = parse_seeds(seeds) if seeds is not None else None
    n = len(seed_list) if seed_list is not None else n
    device = resolve_device(device)
    G, _ = load_generator(run, which=checkpoint, ema=not no_ema, device=device)
    side = G.res * upscale
    check_image_size(side)
    if output:
        check_grid_size(n, side)
    if outdir:
        write_images(sample_batches(G, n, seed, seed_list, trunc, device), n, upscale, Path(outdir),
                     progress=not quiet)
        click.echo(f"wrote {n} images to {outdir}")
    if output:
        import numpy as np
        from ..fileio import atomic_save_image
        from ..images import make_grid, to_pil, zoom
        images = np.concatenate([b for _, b in sample_batches(G, n, seed, seed_list, trunc, device)])
        atomic_save_image(output, to_pil(make_grid(zoom(images, upscale))))
        click.echo(f"wrote {output}")


def sample_batches(G, n: int, seed: int, seeds: list[int] | None, truncation: float, device):
    """(file names, uint8 images) a batch at a time: n images from `seed`, or one image per seed of `seeds`."""
    from ..generate import generate_from_seeds, image_batches
    if seeds is None:
        done = 0
        for images in image_batches(G, n, seed=seed, device=device, truncation=truncation):
            yield [f"seed{seed:04d}-{done + k:05d}.png" for k in range(len(images))], images
            done += len(images)
        return
    for start in range(0, len(seeds), SEEDS_PER_BATCH):
        chunk = seeds[start:start + SEEDS_PER_BATCH]
        yield [f"seed{s:04d}.png" for s in chunk], generate_from_seeds(G, chunk, truncation, device=device)


SEEDS_PER_BATCH = 64


def check_image_size(side: int) -> None:
    from ..data import MAX_PIXELS
    if side * side > MAX_PIXELS:
        raise UserError(f"images of {side} x {side} pixels are larger than gansmith opens ({MAX_PIXELS:,} "
                        "pixels): use a smaller --upscale")


def check_grid_size(n: int, side: int) -> None:
    """A grid PNG no image viewer (nor gansmith) would open is refused, saying how many images fit in one."""
    from ..data import MAX_PIXELS
    from ..images import GRID_PAD, grid_size
    height, width, _ = grid_size(n, side, side)
    if height * width > MAX_PIXELS:
        per_row = (math.isqrt(MAX_PIXELS) - GRID_PAD) // (side + GRID_PAD)  # of the largest square grid
        raise UserError(f"a grid of {n} images of {side} px would be {width} x {height} pixels, more than gansmith "
                        f"opens ({MAX_PIXELS:,}): use -n {per_row ** 2} or fewer for a grid, or --outdir")


def write_images(batches, n: int, upscale: int, outdir: Path, progress: bool) -> None:
    """Each image of `batches` ((names, images) pairs) as its own PNG in outdir, a batch at a time (memory stays
    flat for any n). The disk space needed is estimated from the first batch's files before anything is written."""
    import io
    from tqdm import tqdm
    from ..fileio import atomic_write_bytes
    from ..images import to_pil, zoom
    with tqdm(total=n, unit="img", desc="sampling", disable=not progress or n < 256, file=sys.stderr) as bar:
        for b, (names, images) in enumerate(batches):
            files = []
            for img in zoom(images, upscale):
                buf = io.BytesIO()
                to_pil(img).save(buf, format="PNG")
                files.append(buf.getvalue())
            if b == 0:
                check_disk_space(outdir, n * 1.1 * sum(map(len, files)) / len(files))
            for name, data in zip(names, files):
                atomic_write_bytes(outdir / name, data)
            bar.update(len(files))


def check_disk_space(folder: Path, needed: float) -> None:
    import shutil
    existing = next((p for p in (folder, *folder.absolute().parents) if p.exists()), None)
    free = shutil.disk_usage(existing).free if existing is not None and existing.is_dir() else None
    if free is not None and needed > free:
        raise UserError(f"the images need about {needed / 2**30:.2f} GiB in {folder}, which has "
                        f"{free / 2**30:.2f} GiB free: ask for fewer (-n) or free some space")
