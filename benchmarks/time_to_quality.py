"""Quality per CPU-minute: the classic DCGAN recipe vs `gansmith train` with its defaults, same wall time.

    python benchmarks/time_to_quality.py --minutes 10 [--budgets 2,5,10] [--datasets fashion,emoji] [--n 5000]

For each data set: the classic recipe (benchmarks/classic_dcgan.py, snapshots at each budget) and
gansmith (one run continued with --resume up to each budget: resume is exact, so this equals one
uninterrupted run) train for the same training wall time; then FID and KID of n generated images
against n real ones (standard Inception, TF-protocol preprocessing). Writes
benchmarks/results/time_to_quality.md, the sample grids next to it and, per data set, the two grids of the
longest budget side by side (classic | gansmith). Finished runs and their scores are reused from --work: to
rerun one arm, delete its files (NAME-classic.pt* or the folder NAME-gansmith/). Every scored row is kept in
benchmarks/results/time_to_quality.json (a row replaces the one of the same data, budget, recipe and n), and
the table shows them all, so one data set or one sample size can be rerun alone.
Data: Fashion-MNIST 60k train split (apt-get install dataset-fashion-mnist), colour emoji 64 px
(../shared/data/twemoji-64.zip).
"""
import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import classic_dcgan  # noqa: E402
from common import machine  # noqa: E402
from PIL import Image  # noqa: E402

from gansmith.data import load_images  # noqa: E402
from gansmith.fileio import atomic_save_image, atomic_write_text  # noqa: E402
from gansmith.generate import generate_images, load_generator  # noqa: E402
from gansmith.images import float_to_uint8, make_grid, to_pil  # noqa: E402
from gansmith.metrics import evaluate  # noqa: E402
from gansmith.training.checkpoint import load_checkpoint  # noqa: E402

DATASETS = {
    "fashion": "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
    "emoji": str(HERE.parent.parent / "shared" / "data" / "twemoji-64.zip"),
}
SAMPLE_SEED = 7
NOTES_MARKER = "<!-- generated above; the notes below are kept when the script rewrites the table -->"


def write_keeping_notes(path: Path, generated: list[str]) -> None:
    """Write the generated lines, then NOTES_MARKER and the hand-written reading found below it in `path`."""
    notes = path.read_text().partition(NOTES_MARKER)[2] if path.exists() else ""
    atomic_write_text(path, "\n".join(generated + ["", NOTES_MARKER]) + (notes or "\n"))


def prepare(name: str, work: Path):
    data = load_images(DATASETS[name], progress=False)
    path = work / f"{name}.npz"
    if not path.exists():
        np.savez(path, x=data.numpy())
    return data, path


def classic_samples(state_path: Path, res: int, nc: int, n: int) -> np.ndarray:
    G = classic_dcgan.generator(res, nc)
    G.load_state_dict(torch.load(state_path, weights_only=True))
    G.eval()
    z = torch.randn(n, classic_dcgan.NZ, 1, 1, generator=torch.Generator().manual_seed(SAMPLE_SEED))
    with torch.no_grad():
        return np.concatenate([float_to_uint8(G(z[i:i + 250])) for i in range(0, n, 250)])


def side_by_side(grids: list[np.ndarray], gap: int = 16) -> np.ndarray:
    """Images left to right on white, top-aligned, `gap` pixels apart."""
    h = max(g.shape[0] for g in grids)
    parts = []
    for g in grids:
        parts += [np.pad(g, ((0, h - g.shape[0]), (0, 0), (0, 0)), constant_values=255),
                  np.full((h, gap, g.shape[2]), 255, np.uint8)]
    return np.concatenate(parts[:-1], axis=1)


def run(cmd):
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run(list(map(str, cmd)), check=True)


def bench(name: str, budgets: list[float], n: int, work: Path, out: Path) -> list[dict]:
    """Train both arms (a finished run is reused) and score every budget (a score is cached beside its run,
    so deleting one arm's files reruns and rescores that arm only)."""
    data, npz = prepare(name, work)
    classic = work / f"{name}-classic.pt"
    info = Path(f"{classic}.json")
    snapshots = [classic] + [Path(f"{classic}.{b:g}min") for b in budgets[:-1]]
    finished = info.exists() and json.loads(info.read_text()).get("minutes") == budgets[-1]
    if finished and all(p.exists() for p in snapshots):
        print(f"reusing the classic run {classic}", flush=True)
    else:
        run([sys.executable, HERE / "classic_dcgan.py", npz, "--minutes", budgets[-1], "--out", classic,
             "--snapshots", ",".join(f"{b:g}" for b in budgets[:-1])])
    gs_run, done = work / f"{name}-gansmith", 0.0
    if all((gs_run / f"snapshot-{b:g}min.pt").exists() for b in budgets):
        print(f"reusing the gansmith run {gs_run}", flush=True)
        done = budgets[-1]
    for b in (b for b in budgets if b > done):
        resume = ["--resume"] if done else []
        run([sys.executable, "-m", "gansmith", "train", npz, "--out", gs_run, "--minutes", b - done,
             "--no-report", "--quiet", *resume])
        done = b
        latest = sorted((gs_run / "checkpoints").glob("step-*.pt"))[-1]
        (gs_run / f"snapshot-{b:g}min.pt").write_bytes(latest.read_bytes())
    classic_info = json.loads(info.read_text())
    classic_steps = {**classic_info.get("snapshot_steps", {}), f"{budgets[-1]:g}": classic_info["steps"]}
    rows = []
    for b in budgets:
        state = classic if b == budgets[-1] else Path(f"{classic}.{b:g}min")
        steps = {"classic DCGAN": classic_steps.get(f"{b:g}"),
                 "gansmith": load_checkpoint(gs_run / f"snapshot-{b:g}min.pt")["step"]}
        for recipe in ("classic DCGAN", "gansmith"):
            classic_arm = recipe == "classic DCGAN"
            cache = Path(f"{classic}.score-{b:g}min-n{n}.json") if classic_arm else gs_run / f"score-{b:g}min-n{n}.json"
            if cache.exists():
                rows.append(json.loads(cache.read_text()))
                continue
            fake = (classic_samples(state, data.res, data.channels, n) if classic_arm else
                    generate_images(load_generator(gs_run / f"snapshot-{b:g}min.pt")[0], n, seed=SAMPLE_SEED))
            m = evaluate(data, fake, ("fid", "kid"), n=n)
            grid = out / f"ttq-{name}-{recipe.split()[0]}-{b:g}min.png"
            atomic_save_image(grid, to_pil(make_grid(fake[:64])))
            rows.append({"data": name, "minutes": b, "recipe": recipe, "steps": steps[recipe], "fid": m["fid"],
                         "kid": m["kid"], "kid_std": m["kid_std"], "n": n, "grid": grid.name,
                         "date": str(datetime.date.today()), "machine": machine(),
                         "command": f"python benchmarks/time_to_quality.py {' '.join(sys.argv[1:])}"})
            atomic_write_text(cache, json.dumps(rows[-1]))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def merge_rows(path: Path, new: list[dict]) -> list[dict]:
    """The rows kept in `path` (JSON) with `new` replacing those of the same data, budget, recipe and n; saved."""
    def key(r):
        return r["data"], r["minutes"], r["recipe"], r["n"]
    fresh = {key(r) for r in new}
    rows = [r for r in (json.loads(path.read_text()) if path.exists() else []) if key(r) not in fresh] + new
    rows.sort(key=lambda r: (list(DATASETS).index(r["data"]), r["n"], r["minutes"], r["recipe"]))
    atomic_write_text(path, json.dumps(rows, indent=1) + "\n")
    return rows


def write_table(rows: list[dict], path: Path) -> None:
    lines = ["# Time to quality: classic DCGAN vs gansmith defaults", "",
             "FID and KID of n generated vs n real images (standard Inception, TF-protocol resize), the same training "
             "wall time per budget. Machines: " + "; ".join(sorted({r["machine"] for r in rows})) + ".", "",
             "Commands: " + "; ".join(f"`{c}`" for c in sorted({r["command"] for r in rows})), "",
             "| data | n | minutes | recipe | steps | FID | KID | ratio FID gansmith / classic | measured | CPU |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        other = next((o for o in rows if (o["data"], o["n"], o["minutes"], o["recipe"]) ==
                      (r["data"], r["n"], r["minutes"], "classic DCGAN")), None)
        ratio = f"{r['fid'] / other['fid']:.2f}" if other and r["recipe"] == "gansmith" else ""
        steps = f"{r['steps']:,}" if r.get("steps") else ""
        lines.append(f"| {r['data']} | {r['n']:,} | {r['minutes']:g} | {r['recipe']} | {steps} | {r['fid']:.2f} | "
                     f"{r['kid']:.4f} ± {r['kid_std']:.4f} | {ratio} | {r['date']} | {r['machine'].split(',')[0]} |")
    lines += ["", "Grids (the first 64 samples of each row): " + ", ".join(sorted({f"`{r['grid']}`" for r in rows}))]
    write_keeping_notes(path, lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--budgets", default="", help="comma-separated minutes (default: 2,5,MINUTES)")
    p.add_argument("--datasets", default="fashion,emoji")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--work", default="/tmp/gansmith-ttq")
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args()
    budgets = sorted({float(b) for b in args.budgets.split(",") if b} or {2.0, 5.0, args.minutes})
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.datasets.split(","):
        rows += bench(name, budgets, args.n, work, out)
        write_table(merge_rows(out / "time_to_quality.json", rows), out / "time_to_quality.md")
        last = [r for r in rows if r["data"] == name and r["minutes"] == budgets[-1]]  # classic | gansmith
        grids = [np.asarray(Image.open(out / r["grid"]).convert("RGB")) for r in last]
        atomic_save_image(out / f"ttq-{name}-side-by-side.png", to_pil(side_by_side(grids)))


if __name__ == "__main__":
    main()
