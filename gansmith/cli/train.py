"""`gansmith train`, `gansmith sample`, `gansmith sweep`."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import UserError
from ..fileio import atomic_save_image
from ..images import make_grid, to_pil, zoom
from ..models.spec import DEFAULTED
from ..training.config import FIELDS, TrainConfig, default_help, flag, upgrade_saved
from . import cli
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
        saved = RunFolder(out).read_config()
        if saved:
            base.update(upgrade_saved(saved["config"]))
    base.update(given, data=data, out=out)
    return TrainConfig.from_dict(base)


def default_out(data: str) -> str:
    """runs/<the data's name>: runs/photos for photos/, runs/fashion-mnist for builtin:fashion-mnist."""
    first = data.split(",")[0].rstrip("/\\")
    name = first.split(":", 1)[1] if first.startswith("builtin:") else Path(first).name
    for suffix in (".gz", ".zip", ".npz"):
        name = name.removesuffix(suffix)
    return str(Path("runs") / (name or Path.cwd().name))


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
    out = out or default_out(data)
    result = run_training(config_from_options(data, out, resume, options), resume=resume, progress=not quiet)
    if result.interrupted:
        click.echo(f"stopped early; continue with: gansmith train {data} --out {out} --resume", err=True)
        sys.exit(130)
    show_outputs(result.run)


@cli.command()
@click.argument("run")
@click.option("-n", "n", type=int, default=64, show_default=True, help="number of images")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write one grid PNG here")
@click.option("--outdir", type=click.Path(file_okay=False), help="write each image as its own PNG here")
@click.option("--seed", type=int, default=0, show_default=True, help="the same seed gives the same images")
@click.option("--checkpoint", default="latest", show_default=True, help="latest, best, or a checkpoint path")
@click.option("--no-ema", is_flag=True, help="use the raw generator weights instead of their moving average")
@click.option("--upscale", type=int, default=1, show_default=True, help="nearest-neighbour zoom for small images")
def sample(run, n, output, outdir, seed, checkpoint, no_ema, upscale):
    """Generate new images from a trained RUN folder (or a checkpoint file)."""
    from ..generate import generate_images, load_generator
    if not output and not outdir:
        raise UserError("say where the images go: -o grid.png and/or --outdir DIR")
    if n < 1 or upscale < 1:
        raise UserError("-n and --upscale must be at least 1")
    G, _ = load_generator(run, which=checkpoint, ema=not no_ema)
    images = generate_images(G, n, seed=seed)
    images = zoom(images, upscale)
    if output:
        atomic_save_image(output, to_pil(make_grid(images)))
        click.echo(f"wrote {output}")
    if outdir:
        for i, img in enumerate(images):
            atomic_save_image(Path(outdir) / f"seed{seed:04d}-{i:05d}.png", to_pil(img))
        click.echo(f"wrote {n} images to {outdir}")


@cli.command(epilog="""\b
Examples:
  gansmith sweep photos/ --grid "g_lr=1e-4,2e-4 loss=ns,hinge" --minutes-each 3
  gansmith sweep photos/ --grid "r1=0,0.1 mbstd=false,true" --out runs/sweep-r1   # run again to resume""")
@click.argument("data")
@click.option("--grid", required=True, help='options and values to try, e.g. "g_lr=1e-4,2e-4 d_lr=1e-4,4e-4 loss=ns,hinge"')
@click.option("--minutes-each", type=float, default=3.0, help="training time per trial  [default: 3]")
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
