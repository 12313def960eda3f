"""`gansmith mix`, `gansmith project`: working in a trained model's latent space."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ..errors import UserError
from . import cli


@cli.command(epilog="""\b
Examples:
  gansmith mix runs/emoji -o mixing.png
  gansmith mix runs/emoji --rows 1,2,3 --cols 10-13 --crossover 4 --trunc 0.7 -o mixing.png""")
@click.argument("run")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="the grid PNG")
@click.option("--rows", default="1,2,3", help="seeds whose coarse styles (pose, shape) each row takes  [default: 1,2,3]")
@click.option("--cols", default="10-13", help="seeds whose fine styles (colour, texture) each column takes  [default: 10-13]")
@click.option("--crossover", type=int, default=None, help="the first ws layer taken from the column seed  [default: half the layers]")
@click.option("--trunc", type=float, default=1.0, help="truncation psi towards the average w  [default: 1.0]")
@click.option("--size", type=int, default=128, help="nearest-neighbour zoom of each image to about this many pixels  [default: 128]")
@click.option("--checkpoint", default="latest", help="latest, best, or a checkpoint path  [default: latest]")
def mix(run, output, rows, cols, crossover, trunc, size, checkpoint):
    """The style-mixing grid of a StyleGAN RUN: each cell has its row's coarse styles and its column's fine ones."""
    from ..fileio import atomic_save_image
    from ..generate import load_generator, parse_seeds, style_mixing_grid
    from ..images import to_pil
    G, _ = load_generator(run, which=checkpoint)
    if size < 1:
        raise UserError(f"--size must be at least 1, not {size}")
    grid = style_mixing_grid(G, parse_seeds(rows, "--rows"), parse_seeds(cols, "--cols"),
                             crossover if crossover is not None else getattr(G, "num_ws", 2) // 2, trunc)
    zoom = max(1, size // G.res)
    atomic_save_image(output, to_pil(grid.repeat(zoom, axis=0).repeat(zoom, axis=1)))
    click.echo(f"wrote {output}")


@cli.command(epilog="""\b
Examples:
  gansmith project runs/emoji me.png -o me/
  gansmith project runs/emoji me.png -o me/ --space w+ --steps 500      # closer, less editable
  gansmith interpolate runs/emoji --seeds me/latent.npz,you/latent.npz -o morph.gif""")
@click.argument("run")
@click.argument("photo", type=click.Path(path_type=Path))
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="folder for projection.png, latent.npz, projection.gif (the optimization) and result.json")
@click.option("--space", type=click.Choice(["w", "w+", "z"]), default=None,
              help="latent space: w or w+ for StyleGAN (w+: closer, less editable), z for other models "
                   "[default: w for StyleGAN, else z]")
@click.option("--steps", type=int, default=300, help="optimization steps  [default: 300]")
@click.option("--seed", type=int, default=0, help="the same seed gives the same projection  [default: 0]")
@click.option("--checkpoint", default="latest", help="latest, best, or a checkpoint path  [default: latest]")
def project(run, photo, outdir, space, steps, seed, checkpoint):
    """Find the latent whose image in RUN reproduces PHOTO (a perceptual VGG19 loss plus a pixel loss).

    The latent goes to OUTDIR/latent.npz; `gansmith interpolate RUN --seeds a.npz,b.npz` then morphs between
    two of your photos."""
    from ..data.decode import as_array, fit_image, open_image
    from ..fileio import atomic_save_image, atomic_write_json
    from ..images import make_grid, to_pil, upscale_nearest
    from ..generate import load_generator
    from ..models.stylegan import StyleGenerator
    from ..project import project as run_projection
    from ..report.video import save_animation
    G, _ = load_generator(run, which=checkpoint)
    target = as_array(open_image(photo))
    result = run_projection(G, target, steps=steps, space=space, seed=seed, frame_every=max(1, steps // 100))
    outdir.mkdir(parents=True, exist_ok=True)
    side = max(128, G.res)
    fitted = fit_image(target, G.res, G.channels, "crop").transpose(1, 2, 0)
    pair = make_grid(upscale_nearest(np.stack([fitted, result.image]), side), nrow=2)
    atomic_save_image(outdir / "projection.png", to_pil(pair))  # the photo as the model sees it | the projection
    save_latent(outdir / "latent.npz", result, space or ("w" if isinstance(G, StyleGenerator) else "z"))
    save_animation(upscale_nearest(result.frames, side), outdir / "projection.gif", fps=20)
    atomic_write_json(outdir / "result.json", {"photo": str(photo), "steps": steps, "seed": seed,
                                               "vgg_distance": result.vgg_distance, "psnr": result.psnr})
    click.echo(f"wrote {outdir}: projection.png (photo | projection), latent.npz, projection.gif; VGG distance "
               f"{result.vgg_distance:.4f}, PSNR {result.psnr:.2f} dB")


def save_latent(path: Path, result, space: str) -> None:
    """The latent of a projection, as `gansmith interpolate` reads it (np.savez to a temporary file, then rename)."""
    tmp = path.with_suffix(".tmp.npz")
    arrays = {"space": np.array(space), "latent": result.latent.cpu().numpy()}
    if result.noise:
        arrays.update({f"noise{i}": n.cpu().numpy() for i, n in enumerate(result.noise)})
    np.savez(tmp, **arrays)
    tmp.replace(path)
