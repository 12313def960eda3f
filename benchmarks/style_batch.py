"""Many images in one style: a folder in one run against separate runs, and video frames with and without
`--temporal` (flicker = mean change between consecutive outputs / mean change between the inputs).

Inputs are made from the shipped example photos: 20 crops of the astronaut and the cat at --size px, and a
30-frame sequence that pans slowly across the astronaut photo.

    python benchmarks/style_batch.py folder --size 64 --steps 15 --photos 20
    python benchmarks/style_batch.py frames --size 64 --steps 15 --temporal-steps 8 --frames 30
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "gansmith/style/examples"
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import machine  # noqa: E402
from gansmith.style import flicker, transfer_folder  # noqa: E402
from gansmith.style.stylize import side_by_side  # noqa: E402

STYLE = EXAMPLES / "starry_night.jpg"


def make_photos(folder: Path, n: int, size: int) -> None:
    """n square crops, alternating between two photos, at growing offsets."""
    folder.mkdir(parents=True)
    photos = [Image.open(EXAMPLES / name).convert("RGB") for name in ("astronaut.jpg", "chelsea.jpg")]
    for i in range(n):
        photo = photos[i % 2]
        side = min(photo.size) * 2 // 3
        step = (min(photo.size) - side) // max(1, n // 2)
        x, y = (i // 2) * step, (i // 2) * step // 2
        photo.crop((x, y, x + side, y + side)).resize((size, size), Image.LANCZOS).save(folder / f"photo{i:02d}.png")


def make_frames(folder: Path, n: int, size: int) -> list[Path]:
    """A pan of 4 px per frame (in the 512 px photo) across the astronaut, each frame resized to size px."""
    folder.mkdir(parents=True)
    photo = Image.open(EXAMPLES / "astronaut.jpg").convert("RGB")
    side = 384
    for i in range(n):
        photo.crop((4 * i, 64, 4 * i + side, 64 + side)).resize((size, size), Image.LANCZOS).save(
            folder / f"frame{i:03d}.png")
    return sorted(folder.iterdir())


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def separate_runs(photos: Path, out: Path, size: int, steps: int, threads: int) -> None:
    """One `gansmith style` process per image, as a shell loop would do it."""
    out.mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    for photo in sorted(photos.iterdir()):
        subprocess.run([sys.executable, "-m", "gansmith", "style", str(photo), str(STYLE), "-o", str(out / photo.name),
                        "--size", str(size), "--steps", str(steps), "--quiet"], check=True, cwd=ROOT,
                       env=env, capture_output=True)


def folder_benchmark(args, work: Path) -> str:
    make_photos(work / "photos", args.photos, args.size)
    folder_s = timed(lambda: transfer_folder(work / "photos", STYLE, work / "folder", size=args.size,
                                             steps=args.steps))
    separate_s = timed(lambda: separate_runs(work / "photos", work / "separate", args.size, args.steps,
                                             args.threads))
    n = args.photos
    return f"""## A folder against separate runs

{n} crops of the shipped astronaut and cat photos at {args.size} px, {args.steps} iterations each.

| how | total s | per image s |
| --- | --- | --- |
| `gansmith style photos/ starry_night.jpg -o out/` (one process) | {folder_s:.1f} | {folder_s / n:.2f} |
| {n} x `gansmith style photoNN.png starry_night.jpg` | {separate_s:.1f} | {separate_s / n:.2f} |

The folder run loads VGG19 once and computes the style's Gram targets once; a separate run does both per
image (and starts Python and torch). Separate / folder: {separate_s / folder_s:.2f}x.
"""


def frames_benchmark(args, work: Path) -> str:
    frames = make_frames(work / "frames", args.frames, args.size)
    independent_s = timed(lambda: transfer_folder(work / "frames", STYLE, work / "independent", size=args.size,
                                                  steps=args.steps))
    temporal_s = timed(lambda: transfer_folder(work / "frames", STYLE, work / "temporal", temporal=True,
                                               size=args.size, steps=args.steps, final_steps=args.temporal_steps))
    inputs = [Image.open(p) for p in frames]
    outputs = {name: [Image.open(work / name / p.name) for p in frames] for name in ("independent", "temporal")}
    flick = {name: flicker(inputs, images) for name, images in outputs.items()}
    picks = [0, len(frames) // 2, len(frames) - 1]
    side_by_side([inputs[i] for i in picks] + [outputs["independent"][i] for i in picks]
                 + [outputs["temporal"][i] for i in picks], height=max(args.size, 128), gap=4).save(
        ROOT / "benchmarks/results/style_frames.png")
    return f"""## Video frames: --temporal against independent frames

{args.frames} frames of a pan across the astronaut ({args.size} px, 4 px of the 512 px photo per frame).
Independent: every frame from its own photo with {args.steps} iterations. Temporal: the first frame the same,
then each frame starts from the previous frame's result and runs {args.temporal_steps} iterations.

| frames | flicker | total s |
| --- | --- | --- |
| independent | {flick['independent']:.2f} | {independent_s:.1f} |
| `--temporal` | {flick['temporal']:.2f} | {temporal_s:.1f} |

Flicker 1 would mean the output changes between frames as much as the input does. First, middle and last
frame (inputs, then independent, then temporal): `benchmarks/results/style_frames.png`.
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["folder", "frames"])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=15, help="iterations of an image (an independent frame)")
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--temporal-steps", type=int, default=8, help="iterations of a frame after the first")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="style-batch-"))
    try:
        body = (folder_benchmark if args.part == "folder" else frames_benchmark)(args, work)
    finally:
        shutil.rmtree(work)
    report = f"""# Style transfer on many images: {args.part}

- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}
- machine: {machine()}; {args.threads} thread(s) in every run; the CPU was shared with other jobs
- command: `python benchmarks/style_batch.py {' '.join(sys.argv[1:])}`
- style: the shipped Starry Night

{body}"""
    out = ROOT / f"benchmarks/results/style_{args.part}.md"
    out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
