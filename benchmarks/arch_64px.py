"""Which architecture for 64 px colour data: dcgan vs progressive vs msg, the same training wall time each.

    python benchmarks/arch_64px.py --minutes 10 [--n 2000] [--setups dcgan:64,dcgan:32,progressive:16,msg:16]

Each setup is ARCH:WIDTH, trained by `gansmith train` with its defaults otherwise (each architecture's own
optimizer defaults; progressive: --phase-kimg chosen so the full resolution fades in around the middle of
the budget). Finished runs are not retrained, evaluated runs not re-evaluated. Then FID and KID of n generated
images against n real ones (standard Inception) and an 8x8 sample grid per setup, plus one side-by-side
picture. Writes benchmarks/results/arch_64px.md. Data: colour emoji 64 px (../shared/data/twemoji-64.zip).
The runs are sequential, so the CPU must be otherwise quiet for the wall-time budget to be fair.
"""
import argparse
import datetime
import json
import sys
from pathlib import Path


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from time_to_quality import prepare, run, side_by_side  # noqa: E402
from common import machine  # noqa: E402

from gansmith.fileio import atomic_save_image, atomic_write_text  # noqa: E402
from gansmith.generate import generate_images, load_generator  # noqa: E402
from gansmith.images import make_grid, to_pil  # noqa: E402
from gansmith.metrics import evaluate  # noqa: E402

SAMPLE_SEED = 7
PHASE_KIMG = {"progressive": 4.0}  # 7 phases of 4 kimg before the 64 px block fades in (cheap low stages)


def train(npz: Path, arch: str, width: int, minutes: float, out: Path) -> None:
    extra = ["--phase-kimg", PHASE_KIMG[arch]] if arch in PHASE_KIMG else []
    run([sys.executable, "-m", "gansmith", "train", npz, "--out", out, "--arch", arch, "--width", width,
         "--minutes", minutes, "--seed", 0, "--no-report", "--quiet", *extra])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--setups", default="dcgan:64,dcgan:32,progressive:16,msg:16")
    p.add_argument("--work", default="/tmp/gansmith-arch64")
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args()
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    data, npz = prepare("emoji", work)
    rows, grids = [], []
    for setup in args.setups.split(","):
        arch, width = setup.split(":")
        run_dir = work / f"{arch}-w{width}"
        if not (run_dir / "metrics.jsonl").exists():  # a finished run is not retrained (resumable benchmark)
            train(npz, arch, int(width), args.minutes, run_dir)
        row = {"arch": arch, "width": int(width), **train_summary(run_dir)}
        fake = generate_images(load_generator(run_dir)[0], args.n, seed=SAMPLE_SEED)
        scores = run_dir / f"scores-n{args.n}.json"  # evaluated once per run (resumable benchmark)
        if not scores.exists():
            atomic_write_text(scores, json.dumps(evaluate(data, fake, ("fid", "kid"), n=args.n)))
        row.update(json.loads(scores.read_text()))
        grid = make_grid(fake[:64])
        row["grid"] = f"arch64-{arch}-w{width}.png"
        atomic_save_image(out / row["grid"], to_pil(grid))
        rows.append(row)
        grids.append(grid)
        print(json.dumps(row), flush=True)
    atomic_save_image(out / "arch64-side-by-side.png", to_pil(side_by_side(grids)))
    write_table(rows, args, out / "arch_64px.md")


def train_summary(run_dir: Path) -> dict:
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    return {"kimg": last["kimg"], "steps": last["step"], "img_per_s": last["img_per_s"],
            "stage": last.get("stage"), "alpha": last.get("alpha")}


def write_table(rows: list[dict], args, path: Path) -> None:
    best = min(rows, key=lambda r: r["fid"])
    lines = ["# Architectures at 64 px: dcgan vs progressive vs msg, same training time", "",
             f"{datetime.date.today()} · {machine()}", "",
             f"Command: `python benchmarks/arch_64px.py {' '.join(sys.argv[1:])}`", "",
             f"Data: colour emoji 64 px, {rows[0]['n_real']} real images; {args.minutes:g} minutes of training "
             f"each; FID/KID of {rows[0]['n_fake']} generated vs {rows[0]['n_real']} real images.", "",
             "| arch | width | steps | kimg | images/s (last interval) | FID | KID | FID / best |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['arch']} | {r['width']} | {r['steps']} | {r['kimg']:.1f} | {r['img_per_s']:.0f} | "
                     f"{r['fid']:.1f} | {r['kid']:.4f} ± {r['kid_std']:.4f} | {r['fid'] / best['fid']:.2f} |")
    lines += ["", "Grids (left to right in `arch64-side-by-side.png`): " + ", ".join(f"`{r['grid']}`" for r in rows)]
    atomic_write_text(path, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
