"""`gansmith interpolate`, `gansmith export`: sharing what a trained generator makes."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserError
from . import cli


@cli.command()
@click.argument("run")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="walk.gif, or walk.mp4 (needs imageio-ffmpeg)")
@click.option("--seeds", default="0,1,2,3", show_default=True,
              help="the keyframes the walk visits in turn, then back to the first: seeds, ranges like 4-7, and "
                   "latents saved by `gansmith project` (me.npz), e.g. 1,me.npz,2")
@click.option("--frames", type=int, default=30, show_default=True, help="frames from one seed to the next")
@click.option("--fps", type=float, default=25, show_default=True, help="frames per second")
@click.option("--size", type=int, default=256, show_default=True,
              help="nearest-neighbour zoom of smaller images to about this many pixels")
@click.option("--checkpoint", default="latest", show_default=True, help="latest, best, or a checkpoint path")
@click.option("--no-ema", is_flag=True, help="use the raw generator weights instead of their moving average")
def interpolate(run, output, seeds, frames, fps, size, checkpoint, no_ema):
    """A looping walk through the latent space of RUN (spherical interpolation in z, linear in StyleGAN's W)."""
    from ..generate import load_generator, parse_keyframes, walk_frames
    from ..images import upscale_nearest
    from ..report.video import save_animation
    keys = parse_keyframes(seeds)
    if size < 1:
        raise UserError(f"--size must be at least 1, not {size}")
    G, _ = load_generator(run, which=checkpoint, ema=not no_ema)
    images = walk_frames(G, keys, frames)
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
