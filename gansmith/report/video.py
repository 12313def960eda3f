"""Animations from uint8 N x H x W x C frames: a looping GIF (Pillow) or an MP4 (imageio-ffmpeg, optional)."""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..fileio import atomic_write_bytes
from ..images import to_pil

FORMATS = (".gif", ".mp4")


def save_animation(frames: np.ndarray, path: str | Path, fps: float = 25) -> Path:
    """Write the frames as a looping animation; the format follows the extension (.gif or .mp4)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"{path}: the animation must end in {' or '.join(FORMATS)}")
    if not 0 < fps <= 100:
        raise UserError(f"the frame rate must be between 0 and 100 frames per second, not {fps}")
    atomic_write_bytes(path, gif_bytes(frames, fps) if suffix == ".gif" else mp4_bytes(frames, fps))
    return path


def gif_bytes(frames: np.ndarray, fps: float) -> bytes:
    images = [to_pil(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps),
                   loop=0, disposal=1)
    return buf.getvalue()


def mp4_bytes(frames: np.ndarray, fps: float) -> bytes:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UserError("MP4 needs imageio-ffmpeg: pip install imageio-ffmpeg (or write a .gif)") from None
    rgb = frames if frames.shape[-1] == 3 else np.repeat(frames, 3, axis=-1)
    height, width = rgb.shape[1:3]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "walk.mp4"
        # yuv420p (what every player reads) needs even sizes: macro_block_size=2 lets ffmpeg round up.
        writer = imageio_ffmpeg.write_frames(str(out), (width, height), fps=fps, pix_fmt_in="rgb24",
                                             macro_block_size=2, quality=8)
        writer.send(None)
        for frame in rgb:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        return out.read_bytes()
