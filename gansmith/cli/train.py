"""`gansmith train`, `gansmith sweep`."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import UserError
from ..models.spec import DEFAULTED
from ..training.config import FIELDS, MODEL_SHAPE_KEYS, TrainConfig, default_help, flag, upgrade_saved
from . import Finite, cli
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
