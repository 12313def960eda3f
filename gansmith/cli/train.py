"""`gansmith train`, `gansmith sample`, `gansmith sweep`."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from ..errors import UserError
from ..fileio import atomic_save_image
from ..images import GRID_PAD, grid_size, make_grid, to_pil, zoom
from ..models.spec import DEFAULTED
from ..training.config import FIELDS, MODEL_SHAPE_KEYS, TrainConfig, default_help, flag, upgrade_saved
from . import Finite, cli, seed_type
from .runs import show_outputs


class RegistryChoice(click.Choice):
    """A click.Choice whose names are read from a config field's `choices` when used, so architectures and losses
    registered after import (a plug-in, a test) are accepted too."""

    def __init__(self, names):
        self._names = names
        super().__init__(list(map(str, names())))

    @property
    def choices(self):
        return tuple(map(str, self._names()))

    @choices.setter
    def choices(self, value):
        pass


def click_type(name: str, f):
    """The click type of a config field, from its annotation and choices."""
    kind = f.type.split("|")[0].strip()
    if f.metadata["choices"] is not None and kind == "str":
        return RegistryChoice(f.metadata["choices"])
    return {"int": int, "float": float, "bool": bool}.get(kind, str)


def option_help(name: str, f) -> str:
    """The help text of a training option, with its default in one format: [default: ...]."""
    if name in DEFAULTED:
        return f"{f.metadata['help']} {default_help(name)}"
    default = f.default
    if isinstance(default, bool):
        return f"{f.metadata['help']} [default: {'on' if default else 'off'}]"
    return f"{f.metadata['help']}" + ("" if default in (None, "") else f" [default: {default}]")


def train_options(f=None, exclude: tuple[str, ...] = ()):
    """Add a flag for every training option (TrainConfig field with cli=True), except those in `exclude`. Every
    option defaults to "not given", so that --resume can tell what the user changed from what should come from the
    run's saved config."""
    if f is None:
        return lambda g: train_options(g, exclude)
    for name, field in reversed(list(FIELDS.items())):
        if not field.metadata["cli"] or flag(name) in exclude:
            continue
        type_ = click_type(name, field)
        if type_ is bool:  # --sn / --no-sn, so --resume can switch a saved option off again
            f = click.option(f"{flag(name)}/--no-{flag(name)[2:]}", name, default=None, help=option_help(name, field))(f)
        else:
            f = click.option(flag(name), name, type=type_, default=None, help=option_help(name, field))(f)
    return f


def config_from_options(data: str, out: str, resume: bool, options: dict) -> TrainConfig:
    """Given options override; the rest come from the run's config.json on --resume, else defaults."""
    given = {k: v for k, v in options.items() if v is not None}
    base = TrainConfig().to_dict()
    if resume:
        from ..training.run import RunFolder
        saved = RunFolder(out).saved_config()
        if saved:
            base.update(upgrade_saved(saved))
            refuse_shape_changes(out, base, given)
    base.update(given, data=data, out=out)
    return TrainConfig.from_dict(base)


def default_out(data: str) -> str:
    """runs/<the data's name>: runs/photos for photos/, runs/fashion-mnist for builtin:fashion-mnist."""
    first = data.split(",")[0].rstrip("/\\")
    name = first.split(":", 1)[1] if first.startswith("builtin:") else Path(first).name
    for suffix in (".gz", ".zip", ".npz"):
        name = name.removesuffix(suffix)
    return str(Path("runs") / (name or Path.cwd().name))


def refuse_shape_changes(out: str, saved: dict, given: dict) -> None:
    """On --resume, options that would change the networks' shape are refused, naming what the run was trained
    with (before any other check, which would blame options the user never gave but the run's config holds)."""
    changed = [k for k in MODEL_SHAPE_KEYS if k in given and given[k] != saved[k]]
    if changed:
        def listed(values):
            return ", ".join(f"{flag(k)} {values[k]}" for k in changed)
        raise UserError(f"{out} was trained with {listed(saved)}, not {listed(given)}: a run keeps the shape of its "
                        "networks; drop these options to resume it, or start a new run with another --out")


@cli.command(epilog="""\b
Examples:
  gansmith train photos/ --minutes 30                  # into runs/photos
  gansmith train photos/ --out runs/photos --resume    # continue where it stopped
  gansmith train builtin:fashion-mnist --kimg 100 --augment translation,cutout""")
@click.argument("data")
@click.option("--out", "-o", default=None, help="run folder (created if missing) [default: runs/<name of DATA>]")
@click.option("--resume", is_flag=True, help="continue the run in --out where it stopped")
@click.option("--quiet", is_flag=True, help="no progress bar (nor its plain lines when not on a terminal)")
@train_options
def train(data, out, resume, quiet, **options):
    """Train a GAN on DATA: a folder of images, a .zip, an .npz (array x), an IDX .gz file, or builtin:fashion-mnist.

    On a terminal a progress bar shows the run against its budget (--kimg or --minutes) with the ETA, kimg and
    losses; when the output goes to a file or a pipe, one plain line per --log-every interval instead."""
    from ..training import train as run_training
    out = default_out(data) if out is None else out
    result = run_training(config_from_options(data, out, resume, options), resume=resume, progress=not quiet)
    if result.interrupted and result.checkpoint is None:
        click.echo("stopped before training started; nothing was saved", err=True)
        sys.exit(130)
    if result.interrupted:
        click.echo(f"stopped early; continue with: gansmith train {data} --out {out} --resume", err=True)
        sys.exit(130)
    show_outputs(result.run)


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


@cli.command(epilog="""\b
Examples:
  gansmith sweep photos/ --grid "g_lr=1e-4,2e-4 loss=ns,hinge" --minutes-each 3
  gansmith sweep photos/ --grid "r1=0,0.1 mbstd=false,true" --out runs/sweep-r1   # run again to resume""")
@click.argument("data")
@click.option("--grid", required=True, help='options and values to try, e.g. "g_lr=1e-4,2e-4 d_lr=1e-4,4e-4 loss=ns,hinge"')
@click.option("--minutes-each", type=Finite(min=0, min_open=True), default=3.0,
              help="training time per trial  [default: 3]")
@click.option("--out", "-o", default="runs/sweep", help="folder for the trials and sweep.json  [default: runs/sweep]")
@click.option("--eval-n", type=int, default=500, help="images per trial for KID  [default: 500]")
@click.option("--quiet", is_flag=True, help="no progress bars")
@train_options(exclude=("--eval-n", "--eval-every"))  # trials are evaluated once, at the end
def sweep(data, grid, minutes_each, out, eval_n, quiet, **options):
    """Short trials over a grid of options, ranked by KID; prints the winner's command line. Resumable."""
    from ..training.sweep import run_sweep
    if eval_n < 10:
        raise UserError(f"--eval-n must be at least 10, not {eval_n}")
    base = TrainConfig.from_dict({**TrainConfig().to_dict(), **{k: v for k, v in options.items() if v is not None}})
    results = run_sweep(data, out, grid, minutes_each, base, eval_n=eval_n, progress=not quiet)
    click.echo(f"{'rank':>4}  {'KID':>10}  {'± std':>8}  {'FID':>8}  options")
    for rank, t in enumerate(results, 1):
        params = " ".join(f"{k}={v}" for k, v in t["params"].items())
        std = "—" if t["kid_std"] is None else f"{t['kid_std']:.5f}"  # one subset: no spread
        click.echo(f"{rank:>4}  {t['kid']:>10.5f}  {std:>8}  {t['fid']:>8.2f}  {params}")
    click.echo(f"results: {Path(out) / 'sweep.json'}")
    click.echo(f"winner:  {results[0]['command']}")
