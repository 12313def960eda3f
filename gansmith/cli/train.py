"""`gansmith train`, `gansmith sample`, `gansmith demo`."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import UserError
from ..fileio import atomic_save_image
from ..images import make_grid, to_pil
from ..training.config import ARCH_DEFAULTS, SMALL_RES, TINY_RES, TrainConfig, upgrade_saved
from ..training.lr import LR_DECAYS
from . import cli


def arch_default_help(key: str) -> str:
    """'(default: ...)' for an option whose default depends on the architecture (ARCH_DEFAULTS)."""
    tiny, small, dcgan, prog = (ARCH_DEFAULTS[a][key] for a in ("dcgan-tiny", "dcgan-small", "dcgan", "progressive"))
    up_to_tiny = f"{tiny:g} for dcgan up to {TINY_RES} px, " if tiny != small else ""
    small_text = f"{small:g} up to {SMALL_RES} px" if up_to_tiny else f"{small:g} for dcgan up to {SMALL_RES} px"
    return f"(default: {up_to_tiny}{small_text}, {dcgan:g} above, {prog:g} for progressive/msg)"


# (flag, TrainConfig field, type, help). Every option defaults to "not given" so that --resume can tell
# what the user changed from what should come from the run's saved config.
TRAIN_OPTIONS = [
    ("--res", "res", int, "image size in pixels: 28, 32, 64, 128 or 256 (default: from the data)"),
    ("--channels", "channels", int, "1 (grayscale) or 3 (colour) (default: from the data)"),
    ("--fit", "fit", click.Choice(["crop", "pad"]), "make non-square images square by center crop or white padding"),
    ("--arch", "arch", click.Choice(["auto", "dcgan", "progressive", "msg"]),
     "network architecture: dcgan, progressive (ProGAN growing), msg (MSG-GAN multi-scale), or auto "
     f"(progressive for colour images above {SMALL_RES} px, else dcgan)"),
    ("--phase-kimg", "phase_kimg", float, "progressive: kimg of each fade-in and each stable phase"),
    ("--z-dim", "z_dim", int, "size of the latent vector"),
    ("--width", "width", int, "channel width of the networks (the number of scales follows --res) " + arch_default_help("width")),
    ("--d-width", "d_width", int, "channel width of D alone (default: --width)"),
    ("--loss", "loss", click.Choice(["ns", "hinge", "wgan-gp", "lsgan"]), "GAN loss"),
    ("--batch", "batch", int, "images per step " + arch_default_help("batch")),
    ("--g-lr", "g_lr", float, "generator learning rate " + arch_default_help("g_lr")),
    ("--d-lr", "d_lr", float, "discriminator learning rate " + arch_default_help("d_lr")),
    ("--beta1", "beta1", float, "Adam beta1 " + arch_default_help("beta1")),
    ("--beta2", "beta2", float, "Adam beta2 " + arch_default_help("beta2")),
    ("--lr-decay", "lr_decay", click.Choice(LR_DECAYS), "none, linear, cosine (both learning rates fall to 0 by the end of the run) or late (held, then a cosine over the last quarter)"),
    ("--ema", "ema", float, "decay of the moving average of G's weights used for sampling, 0 = off "
     + arch_default_help("ema")),
    ("--standing-stats", "standing_stats", bool, "sample the EMA with batch-norm statistics recomputed for its weights "
     f"(BigGAN's standing statistics) instead of those copied from the trained G (default: on for dcgan up to "
     f"{TINY_RES} px, where it was measured better, off above)"),
    ("--g-norm", "g_norm", click.Choice(["bn", "pixel"]), "G's normalization: batch norm or per-sample pixel norm"),
    ("--d-norm", "d_norm", click.Choice(["auto", "bn", "none"]), "D's normalization (auto: none with --sn or a gradient penalty)"),
    ("--sn", "sn", bool, "spectral normalization in D"),
    ("--mbstd", "mbstd", bool, "minibatch standard-deviation channel in D (against mode collapse)"),
    ("--depth", "depth", int, "extra 3x3 convolutions at every hidden scale of DCGAN's G and D, 0 = the classic DCGAN "
     + arch_default_help("depth")),
    ("--pack", "pack", int, "PacGAN: D judges this many samples at once (against mode collapse; 1 = off)"),
    ("--r1", "r1", float, "R1 gradient penalty weight gamma (0 = off)"),
    ("--r1-every", "r1_every", int, "apply R1 every this many steps (lazy regularization)"),
    ("--gp-weight", "gp_weight", float, "gradient penalty weight for --loss wgan-gp"),
    ("--label-smooth", "label_smooth", float, "one-sided label smoothing: D's target for real images is 1 - this"),
    ("--instance-noise", "instance_noise", float, "std of noise added to D's inputs, annealed to 0 over the run"),
    ("--augment", "augment", str, "DiffAugment for small data: any of translation,cutout,color (or joined by +)"),
    ("--d-steps", "d_steps", int, "D updates per G update"),
    ("--balance", "balance", bool, "adaptive balance: skip D while it wins, extra D steps while it is weak"),
    ("--auto-fix", "auto_fix", bool, "let the run doctor apply its remedies (lower a learning rate, turn on augmentation ...)"),
    ("--kimg", "kimg", float, "train until this many thousand images have been shown, counted across resumes (200 if neither this nor --minutes is given)"),
    ("--minutes", "minutes", float, "wall-clock budget of this invocation"),
    ("--log-every", "log_every", float, "write metrics every this many kimg"),
    ("--sample-every", "sample_every", float, "write a sample grid every this many kimg"),
    ("--checkpoint-every", "checkpoint_every", float, "write a checkpoint every this many kimg"),
    ("--keep", "keep", int, "number of periodic checkpoints to keep"),
    ("--report", "report", bool, "refresh RUN/report.html while training (at most once a minute) [default: on]"),
    ("--eval-every", "eval_every", float, "compute FID/KID every this many kimg and keep checkpoints/best.pt (default: never)"),
    ("--eval-n", "eval_n", int, "images per evaluation during training"),
    ("--seed", "seed", int, "random seed (same seed, same run)"),
    ("--device", "device", str, "auto, cpu, cuda[:N] or mps"),
    ("--amp", "amp", bool, "bf16 mixed precision where the hardware has it: GPUs that support it, CPUs with AVX512-BF16 "
     "(elsewhere a no-op with a warning) (default: on for CPUs with AVX512-BF16, where it was measured faster)"),
]


def train_options(f=None, exclude: tuple[str, ...] = ()):
    """Add every TRAIN_OPTIONS flag except those in `exclude` to a click command."""
    if f is None:
        return lambda g: train_options(g, exclude)
    defaults = TrainConfig()
    for flag, field, type_, help_ in reversed(TRAIN_OPTIONS):
        if flag in exclude:
            continue
        default = getattr(defaults, field)
        suffix = "" if default in (None, "") else f" [default: {default}]"
        if type_ is bool:  # --sn / --no-sn, so --resume can switch a saved option off again
            f = click.option(f"{flag}/--no-{flag[2:]}", field, default=None, help=help_)(f)
        else:
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
            base.update(upgrade_saved(saved["config"]))
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
    click.echo(f"report:      {out / 'report.html'}  (open it in a browser)")
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
@click.option("--minutes-each", type=float, default=3.0, show_default=True, help="training time per trial")
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
