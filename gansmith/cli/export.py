"""`gansmith interpolate`, `gansmith export`: sharing what a trained generator makes."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserError
from ..training.config import MAX_SEED
from . import Finite, cli, seed_type


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [seed_type().convert(s, None, None) for s in text.split(",") if s.strip()]
    except click.BadParameter:
        raise UserError(f"--seeds must be comma-separated whole numbers from 0 to {MAX_SEED}, like 1,2,3,4, "
                        f"not {text!r}") from None
    if len(seeds) < 2:
        raise UserError(f"--seeds needs at least 2 seeds to walk between, got {text!r}")
    return seeds


@cli.command()
@click.argument("run")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="walk.gif, or walk.mp4 (needs imageio-ffmpeg)")
@click.option("--seeds", default="0,1,2,3", show_default=True,
              help="the seeds whose images the walk visits in turn, then back to the first")
@click.option("--frames", type=click.IntRange(min=1), default=30, show_default=True,
              help="frames from one seed to the next")
@click.option("--fps", type=Finite(min=0, min_open=True, max=100), default=25, show_default=True,
              help="frames per second")
@click.option("--size", type=click.IntRange(min=1), default=256, show_default=True,
              help="nearest-neighbour zoom of smaller images to about this many pixels")
@click.option("--checkpoint", default="latest", show_default=True, help="latest, best, or a checkpoint path")
@click.option("--no-ema", is_flag=True, help="use the raw generator weights instead of their moving average")
def interpolate(run, output, seeds, frames, fps, size, checkpoint, no_ema):
    """A looping walk through the latent space of RUN (spherical interpolation between seeds)."""
    from ..generate import check_memory, interpolation_frames, load_generator
    from ..images import upscale_nearest
    from ..report.video import save_animation
    seed_list = parse_seeds(seeds)
    G, _ = load_generator(run, which=checkpoint, ema=not no_ema)
    check_memory(len(seed_list) * frames, max(size, G.res), G.channels, "frames")
    images = interpolation_frames(G, seed_list, frames)
    if images.shape[1] < size:
        images = upscale_nearest(images, size)
    save_animation(images, output, fps)
    click.echo(f"wrote {output} ({len(images)} frames, {len(images) / fps:.1f} s, looping)")


@cli.command()
@click.argument("run")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="G.onnx, or G.pt for TorchScript")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), default=None,
              help="[default: from the extension of -o]")
@click.option("--checkpoint", default="latest", show_default=True, help="latest, best, or a checkpoint path")
@click.option("--no-ema", is_flag=True, help="export the raw generator weights instead of their moving average")
def export(run, output, fmt, checkpoint, no_ema):
    """Export the generator of RUN alone (latents z -> images in [-1, 1]) as ONNX or TorchScript."""
    from ..export import export_generator, format_for
    result = export_generator(run, fmt or format_for(output), output, which=checkpoint, ema=not no_ema)
    c, h, w = result["output_shape"]
    click.echo(f"wrote {output} ({result['format']}: z N x {result['z_dim']} float32 -> images N x {c} x {h} x {w} "
               f"in [-1, 1]); it reproduces PyTorch's output to {result['max_abs_diff']:.1e}")
