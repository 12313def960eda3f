"""`gansmith interpolate`, `gansmith export`: sharing what a trained generator makes."""
from __future__ import annotations

from pathlib import Path

import click

import numpy as np

from . import Finite, cli


@cli.command(epilog="""\b
Examples:
  gansmith interpolate runs/shoes -o walk.gif --seeds 1,2,3,4 --frames 30
  gansmith interpolate runs/shoes -o grid.gif --tiles 4     # 16 walks at once, as lightweight-gan shows them
  gansmith interpolate runs/sg -o morph.gif --seeds me/latent.npz,you/latent.npz   # between projected photos
  gansmith interpolate runs/shoes -o walk.mp4 --fps 30""")
@click.argument("run")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="walk.gif, or walk.mp4 (needs imageio-ffmpeg)")
@click.option("--seeds", default="0,1,2,3",
              help="the keyframes the walk visits in turn, then back to the first: seeds, ranges like 4-7, and "
                   "latents saved by `gansmith project` (me.npz)  [default: 0,1,2,3]")
@click.option("--frames", type=click.IntRange(min=1), default=30, help="frames from one keyframe to the next  [default: 30]")
@click.option("--fps", type=Finite(min=0, min_open=True, max=100), default=25, help="frames per second  [default: 25]")
@click.option("--tiles", type=click.IntRange(min=1, max=16), default=1,
              help="a TILES x TILES grid of walks between seeds: each frame is the grid `gansmith sample -n TILES² "
                   "--seed S` makes at the seeds  [default: 1]")
@click.option("--size", type=click.IntRange(min=1), default=256,
              help="nearest-neighbour zoom of smaller frames to about this many pixels  [default: 256]")
@click.option("--checkpoint", default="latest", help="latest, best, or a checkpoint path  [default: latest]")
@click.option("--no-ema", is_flag=True, help="use the raw generator weights instead of their moving average")
def interpolate(run, output, seeds, frames, fps, tiles, size, checkpoint, no_ema):
    """A looping walk through the latent space of RUN (spherical interpolation in z, linear in StyleGAN's W)."""
    from ..generate import check_memory, load_generator, parse_keyframes, walk_frames
    from ..images import make_grid, upscale_nearest
    from ..report.video import save_animation
    keys = parse_keyframes(seeds)
    G, _ = load_generator(run, which=checkpoint, ema=not no_ema)
    per_frame = tiles * tiles
    check_memory(len(keys) * frames * per_frame, max(size // tiles, G.res), G.channels, "frames")
    images = walk_frames(G, keys, frames, per_frame)
    if images.shape[1] * tiles < size:
        images = upscale_nearest(images, size // tiles)
    if tiles > 1:
        images = np.stack([make_grid(images[i:i + per_frame], nrow=tiles) for i in range(0, len(images), per_frame)])
    save_animation(images, output, fps)
    click.echo(f"wrote {output} ({len(images)} frames, {len(images) / fps:.1f} s, looping"
               + (f", {tiles} x {tiles} walks)" if tiles > 1 else ")"))


@cli.command(epilog="""\b
Examples:
  gansmith export runs/shoes -o G.onnx          # needs pip install 'gansmith[export]'
  gansmith export runs/shoes -o G.pt            # TorchScript: torch.jit.load("G.pt")
The file says how to make z for a seed and how outputs map to pixels (ONNX metadata_props, TorchScript's
extra file gansmith.json); docs in README.md, "Seeing a run".""")
@click.argument("run")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="G.onnx, or G.pt for TorchScript")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), default=None,
              help="onnx or torchscript  [default: from the extension of -o]")
@click.option("--checkpoint", default="latest", help="latest, best, or a checkpoint path  [default: latest]")
@click.option("--no-ema", is_flag=True, help="export the raw generator weights instead of their moving average")
def export(run, output, fmt, checkpoint, no_ema):
    """Export the generator of RUN alone (latents z -> images in [-1, 1]) as ONNX or TorchScript."""
    from ..export import export_generator, format_for
    result = export_generator(run, fmt or format_for(output), output, which=checkpoint, ema=not no_ema)
    c, h, w = result["output_shape"]
    click.echo(f"wrote {output} ({result['format']}: z N x {result['z_dim']} float32 -> images N x {c} x {h} x {w} "
               f"in [-1, 1]); it reproduces PyTorch's output to {result['max_abs_diff']:.1e}")
    for key in ("gansmith.seed", "gansmith.pixels"):
        click.echo(f"  {key[9:]}: {result['usage'][key]}")
