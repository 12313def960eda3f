"""`gansmith train`, `gansmith sample`, `gansmith demo`."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import UserError
from ..fileio import atomic_save_image
from ..images import make_grid, to_pil
from ..training.config import TrainConfig
from . import cli

# (flag, TrainConfig field, type, help). Every option defaults to "not given" so that --resume can tell
# what the user changed from what should come from the run's saved config.
TRAIN_OPTIONS = [
    ("--res", "res", int, "image size in pixels: 28, 32, 64, 128 or 256 (default: from the data)"),
    ("--channels", "channels", int, "1 (grayscale) or 3 (colour) (default: from the data)"),
    ("--fit", "fit", click.Choice(["crop", "pad"]), "make non-square images square by center crop or white padding"),
    ("--arch", "arch", str, "network architecture"),
    ("--z-dim", "z_dim", int, "size of the latent vector"),
    ("--width", "width", int, "channel width of the networks (depth follows --res)"),
    ("--loss", "loss", str, "GAN loss"),
    ("--batch", "batch", int, "images per step"),
    ("--g-lr", "g_lr", float, "generator learning rate"),
    ("--d-lr", "d_lr", float, "discriminator learning rate"),
    ("--beta1", "beta1", float, "Adam beta1"),
    ("--beta2", "beta2", float, "Adam beta2"),
    ("--ema", "ema", float, "decay of the moving average of G's weights used for sampling (0 = off)"),
    ("--kimg", "kimg", float, "train until this many thousand images have been shown, counted across resumes (200 if neither this nor --minutes is given)"),
    ("--minutes", "minutes", float, "wall-clock budget of this invocation"),
    ("--log-every", "log_every", float, "write metrics every this many kimg"),
    ("--sample-every", "sample_every", float, "write a sample grid every this many kimg"),
    ("--checkpoint-every", "checkpoint_every", float, "write a checkpoint every this many kimg"),
    ("--keep", "keep", int, "number of periodic checkpoints to keep"),
    ("--seed", "seed", int, "random seed (same seed, same run)"),
    ("--device", "device", str, "auto, cpu, cuda[:N] or mps"),
]


def train_options(f):
    defaults = TrainConfig()
    for flag, field, type_, help_ in reversed(TRAIN_OPTIONS):
        default = getattr(defaults, field)
        suffix = "" if default is None else f" [default: {default}]"
        f = click.option(flag, field, type=type_, default=None, help=help_ + suffix)(f)
    return f


def config_from_options(data: str, out: str, resume: bool, options: dict) -> TrainConfig:
    """Given options override; the rest come from the run's config.json on --resume, else defaults."""
    given = {k: v for k, v in options.items() if v is not None}
    base = TrainConfig().to_dict()
    if resume:
        from ..training.run import RunFolder
        saved = RunFolder(out).read_config()
        if saved:
            base.update(saved["config"])
    base.update(given, data=data, out=out)
    return TrainConfig.from_dict(base)


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
    if result.interrupted:
        click.echo(f"stopped early; continue with: gansmith train {data} --out {out} --resume", err=True)
        sys.exit(130)


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
    if upscale > 1:
        images = images.repeat(upscale, axis=1).repeat(upscale, axis=2)
    if output:
        atomic_save_image(output, to_pil(make_grid(images)))
        click.echo(f"wrote {output}")
    if outdir:
        for i, img in enumerate(images):
            atomic_save_image(Path(outdir) / f"seed{seed:04d}-{i:05d}.png", to_pil(img))
        click.echo(f"wrote {n} images to {outdir}")


@cli.command()
@click.option("--out", "-o", default="runs/demo", show_default=True, help="run folder (a new one if it exists)")
@click.option("--minutes", type=float, default=4.0, show_default=True, help="training time")
@click.option("--quiet", is_flag=True, help="no progress bar")
def demo(out, minutes, quiet):
    """Train a few minutes on the built-in Fashion-MNIST and show where the results are."""
    from ..training import train as run_training
    out = unused_folder(Path(out))
    click.echo(f"training on the built-in Fashion-MNIST (10,000 images) for {minutes:g} minutes into {out}", err=True)
    result = run_training(TrainConfig(data="builtin:fashion-mnist", out=str(out), minutes=minutes),
                          progress=not quiet)
    click.echo(f"samples:     {out / 'samples' / 'latest.png'}")
    click.echo(f"checkpoints: {out / 'checkpoints'}")
    click.echo(f"metrics:     {out / 'metrics.jsonl'}  (tensorboard --logdir {out / 'events'})")
    click.echo(f"more images: gansmith sample {out} -n 64 -o grid.png")
    if result.interrupted:
        sys.exit(130)


def unused_folder(path: Path) -> Path:
    candidate, i = path, 1
    while candidate.exists() and any(candidate.iterdir()):
        i += 1
        candidate = path.with_name(f"{path.name}-{i}")
    return candidate
