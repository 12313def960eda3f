"""`gansmith train`, `gansmith sample`, `gansmith demo`."""
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


def refuse_shape_changes(out: str, saved: dict, given: dict) -> None:
    """On --resume, options that would change the networks' shape are refused, naming what the run was trained
    with (before any other check, which would blame options the user never gave but the run's config holds)."""
    changed = [k for k in MODEL_SHAPE_KEYS if k in given and given[k] != saved[k]]
    if changed:
        def listed(values):
            return ", ".join(f"{flag(k)} {values[k]}" for k in changed)
        raise UserError(f"{out} was trained with {listed(saved)}, not {listed(given)}: a run keeps the shape of its "
                        "networks; drop these options to resume it, or start a new run with another --out")


@cli.command()
@click.argument("data")
@click.option("--out", "-o", required=True, help="run folder (created if missing)")
@click.option("--resume", is_flag=True, help="continue the run in --out where it stopped")
@click.option("--quiet", is_flag=True, help="no progress bar")
@train_options
def train(data, out, resume, quiet, **options):
    """Train a GAN on DATA: a folder of images, a .zip, an .npz (array x), an IDX .gz file, or builtin:fashion-mnist."""
    from ..training import train as run_training
    result = run_training(config_from_options(data, out, resume, options), resume=resume, progress=not quiet)
    if result.interrupted and result.checkpoint is None:
        click.echo("stopped before training started; nothing was saved", err=True)
        sys.exit(130)
    if result.interrupted:
        click.echo(f"stopped early; continue with: gansmith train {data} --out {out} --resume", err=True)
        sys.exit(130)


@cli.command()
@click.argument("run")
@click.option("-n", "--n", "n", type=click.IntRange(min=1), default=64, show_default=True, help="number of images")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write one grid PNG here")
@click.option("--outdir", type=click.Path(file_okay=False), help="write each image as its own PNG here")
@click.option("--seed", type=seed_type(), default=0, show_default=True, help="the same seed gives the same images")
@click.option("--checkpoint", default="latest", show_default=True, help="latest, best, or a checkpoint path")
@click.option("--no-ema", is_flag=True, help="use the raw generator weights instead of their moving average")
@click.option("--upscale", type=click.IntRange(min=1), default=1, show_default=True,
              help="nearest-neighbour zoom for small images")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda[:N] or mps")
@click.option("--quiet", is_flag=True, help="no progress bar")
def sample(run, n, output, outdir, seed, checkpoint, no_ema, upscale, device, quiet):
    """Generate new images from a trained RUN folder (or a checkpoint file)."""
    from ..generate import load_generator
    from ..system import resolve_device
    if not Path(run).exists():
        raise UserError(f"{run} is neither a run folder nor a checkpoint file")
    if not output and not outdir:
        raise UserError("say where the images go: -o grid.png and/or --outdir DIR")
    device = resolve_device(device)
    G, _ = load_generator(run, which=checkpoint, ema=not no_ema, device=device)
    side = G.res * upscale
    check_image_size(side)
    if output:
        check_grid_size(n, side)
    if outdir:
        write_images(G, n, seed, upscale, device, Path(outdir), progress=not quiet)
        click.echo(f"wrote {n} images to {outdir}")
    if output:
        from ..generate import generate_images
        atomic_save_image(output, to_pil(make_grid(zoom(generate_images(G, n, seed=seed, device=device), upscale))))
        click.echo(f"wrote {output}")


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


def write_images(G, n: int, seed: int, upscale: int, device, outdir: Path, progress: bool) -> None:
    """Each image as outdir/seedSEED-INDEX.png, a batch at a time (memory stays flat for any n). The disk space
    needed is estimated from the first batch's files before anything is written."""
    import io
    from tqdm import tqdm
    from ..fileio import atomic_write_bytes
    from ..generate import image_batches
    batches = image_batches(G, n, seed=seed, device=device)
    i = 0
    with tqdm(total=n, unit="img", desc="sampling", disable=not progress or n < 256, file=sys.stderr) as bar:
        for b, images in enumerate(batches):
            files = []
            for img in zoom(images, upscale):
                buf = io.BytesIO()
                to_pil(img).save(buf, format="PNG")
                files.append(buf.getvalue())
            if b == 0:
                check_disk_space(outdir, n * 1.1 * sum(map(len, files)) / len(files))
            for data in files:
                atomic_write_bytes(outdir / f"seed{seed:04d}-{i:05d}.png", data)
                i += 1
            bar.update(len(files))


def check_disk_space(folder: Path, needed: float) -> None:
    import shutil
    existing = next((p for p in (folder, *folder.absolute().parents) if p.exists()), None)
    free = shutil.disk_usage(existing).free if existing is not None and existing.is_dir() else None
    if free is not None and needed > free:
        raise UserError(f"the images need about {needed / 2**30:.2f} GiB in {folder}, which has "
                        f"{free / 2**30:.2f} GiB free: ask for fewer (-n) or free some space")


@cli.command()
@click.option("--out", "-o", default="runs/demo", show_default=True, help="run folder (a new one if it exists)")
@click.option("--minutes", type=Finite(min=0, min_open=True), default=4.0, show_default=True,
              help="training time")
@click.option("--quiet", is_flag=True, help="no progress bar")
def demo(out, minutes, quiet):
    """Train a few minutes on the built-in Fashion-MNIST and show where the results are."""
    from ..training import train as run_training
    out = unused_folder(out)
    click.echo(f"training on the built-in Fashion-MNIST (10,000 images) for {minutes:g} minutes into {out}", err=True)
    result = run_training(TrainConfig(data="builtin:fashion-mnist", out=str(out), minutes=minutes),
                          progress=not quiet)
    click.echo(f"report:      {out / 'report.html'}  (open it in a browser)")
    click.echo(f"samples:     {out / 'samples' / 'latest.png'}")
    click.echo(f"checkpoints: {out / 'checkpoints'}")
    click.echo(f"metrics:     {out / 'metrics.jsonl'}  (tensorboard --logdir {out / 'events'})")
    click.echo(f"more images: gansmith sample {out} -n 64 -o grid.png")
    if result.interrupted:
        sys.exit(130)


def unused_folder(out: str) -> Path:
    if not out.strip():
        raise UserError("--out must name a folder, not an empty string")
    path = Path(out) if Path(out).name else Path(out).absolute()  # "." or "..": name it, so a sibling can be chosen
    candidate, i = path, 1
    while candidate.exists() and any(candidate.iterdir()):
        i += 1
        candidate = path.with_name(f"{path.name}-{i}")
    return candidate


@cli.command()
@click.argument("run", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="print the summary as one JSON object")
def doctor(run, as_json):
    """Say in plain language how a finished or running RUN is doing, and what to do about it."""
    import json
    from ..doctor import summarize
    from ..training.run import RunFolder
    folder = RunFolder(run)
    if not folder.metrics_file.is_file():
        raise UserError(f"{run} has no metrics.jsonl (is it a gansmith run folder that has trained a while?)")
    summary = summarize(folder.read_metrics())
    if as_json:
        click.echo(json.dumps(summary))
        return
    last = summary["last"]
    click.echo(f"{run}: {summary['kimg']:g} kimg, step {summary['step']}")
    if last:
        click.echo(f"  latest: D loss {last['loss_d']:.3f}, G loss {last['loss_g']:.3f}, "
                   f"D(real) {last['d_real']:.2f}, D(fake) {last['d_fake']:.2f}"
                   + (f", FID {last['fid']:.2f}" if "fid" in last else ""))
    for e in summary["events"]:
        step = e.get("evidence", {}).get("step", "?")
        click.echo(f"  [{e['severity']}] step {step}: {e['message']}")
        if e.get("remedy"):
            click.echo(f"      remedy: {e['remedy']}" + ("  (applied by --auto-fix)" if e.get("applied") else ""))
    click.echo(summary["verdict"])


@cli.command()
@click.argument("data")
@click.option("--grid", required=True, help='options and values to try, e.g. "g_lr=1e-4,2e-4 d_lr=1e-4,4e-4 loss=ns,hinge"')
@click.option("--minutes-each", type=Finite(min=0, min_open=True), default=3.0, show_default=True,
              help="training time per trial")
@click.option("--out", "-o", default="runs/sweep", show_default=True, help="folder for the trials and sweep.json")
@click.option("--eval-n", type=int, default=500, show_default=True, help="images per trial for KID")
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
        click.echo(f"{rank:>4}  {t['kid']:>10.5f}  {t['kid_std']:>8.5f}  {t['fid']:>8.2f}  {params}")
    click.echo(f"results: {Path(out) / 'sweep.json'}")
    click.echo(f"winner:  {results[0]['command']}")
