"""Every image of a folder in one style: the network and the style targets are shared, one progress bar
covers all images by cost, finished outputs are skipped (so an interrupted run resumes), and for video
frames `temporal` starts each frame from the previous frame's result so that the sequence does not flicker.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..errors import UserError
from ..fileio import atomic_save_image
from .stylize import ImageLike, Settings, Stylizer, load_image, progress_bar
from .vgg import VGG19Features

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The images directly inside `folder`, sorted by name (the frame order for `temporal`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"not a folder: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files


def output_paths(inputs: list[Path], out_dir: Path) -> list[Path]:
    outputs = [out_dir / (p.stem + ".png") for p in inputs]
    if len(set(outputs)) < len(outputs):
        raise UserError(f"two images in {inputs[0].parent} share a name (e.g. a.jpg and a.png): rename one")
    return outputs


def transfer_folder(content_dir: str | os.PathLike, styles: ImageLike | Sequence[ImageLike],
                    out_dir: str | os.PathLike, *, temporal: bool = False, progress: bool = False,
                    model: VGG19Features | None = None, **options) -> list[Path]:
    """Stylize every image in `content_dir` into `out_dir` (same names, .png); returns the paths written.

    With `temporal`, the files are frames in name order: every frame after the first starts from the previous
    frame's result and runs only the full-size level (`final_steps` iterations).
    """
    inputs = image_files(content_dir)
    outputs = output_paths(inputs, Path(out_dir))
    stylizer = Stylizer(styles, Settings(**options), model)
    pending = [i for i, out in enumerate(outputs) if not out.exists()]
    plans = {i: stylizer.plan(load_image(inputs[i]), single_scale=temporal and i > 0) for i in pending}
    written, last = [], {}   # last: the most recent result, by frame index
    with progress_bar([lv for levels in plans.values() for lv in levels], progress) as bar:
        for i in pending:
            bar.set_description(inputs[i].name, refresh=False)
            init = None
            if temporal and i > 0:
                init = last[i - 1] if i - 1 in last else load_image(outputs[i - 1])
            result = stylizer.run(load_image(inputs[i]), plans[i], bar, init=init)
            atomic_save_image(outputs[i], result)
            written.append(outputs[i])
            last = {i: result}
    return written


def flicker(inputs: Sequence[Image.Image], outputs: Sequence[Image.Image]) -> float:
    """Mean absolute change between consecutive outputs relative to that between the inputs (resized to the
    outputs' size): 1 means the result changes as much as the video, above 1 it flickers."""
    size = outputs[0].size
    a = [np.asarray(im.convert("RGB").resize(size, Image.LANCZOS), dtype=np.float64) for im in inputs]
    b = [np.asarray(im.convert("RGB"), dtype=np.float64) for im in outputs]
    change = lambda frames: sum(np.abs(y - x).mean() for x, y in zip(frames, frames[1:]))
    return float(change(b) / max(change(a), 1e-12))
