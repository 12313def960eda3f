"""Architectures and discriminators compared at the same CPU budget: which reaches the best images per CPU-minute?

    python benchmarks/arch_cpu_budget.py --data emoji --cpu-minutes 10 [--arms "A;B"] [--n 2000] [--threads 1]
    python benchmarks/arch_cpu_budget.py --data emoji-train --cpu-minutes 60 --extend-from 30   # resume the 30s

--extend-from M continues each arm's finished M-CPU-minute run (a copy of it) for the remaining minutes instead of
training from scratch: resume is bit-exact and the arms' settings do not depend on the duration (no lr decay, no
annealing; checked before resuming), so the result is the run a longer budget would have made.

Each arm is an ordinary `gansmith train` run in its own process (benchmarks/cpu_clock.py) whose clock is the
process's CPU time (user + system, all threads) divided by its thread count: on this shared machine other jobs' work does not count,
so arms measured at different times stay comparable. A budget of M CPU-minutes at 1 thread is about M/2 minutes of
wall time on an idle 2-core machine. Scores: FID and KID of n generated images vs n real ones (standard Inception),
precision/recall (Kynkäänniemi et al. 2019), and for Fashion-MNIST the Fréchet distance in the features of a
classifier trained on Fashion-MNIST itself (benchmarks/fashion_classifier.py), which an ImageNet-feature
discriminator cannot game (Kynkäänniemi et al. 2023). Runs and scores are cached in --work; results go to
benchmarks/results/arch_cpu_budget.md (a row replaces the one of the same data, arm, budget and n) with grids.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import EMOJI_ZIP, emoji_split, machine  # noqa: E402

DATASETS = {
    "fashion": "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
    "emoji": EMOJI_ZIP,
    "emoji-train": None,  # the emoji without HELD_OUT for benchmarks/projection.py: common.emoji_split(--work)
}
ARMS = {
    "dcgan defaults": {},
    "dcgan defaults + DiffAugment": {"augment": "translation,cutout,color"},
    "fastgan + projected D (hinge + DiffAugment)": {"arch": "fastgan", "loss": "hinge",
                                                   "augment": "translation,cutout,color"},
    "dcgan G + projected D (hinge + DiffAugment)": {"d_arch": "projected", "loss": "hinge",
                                                   "augment": "translation,cutout,color"},
    "dcgan + vision-aided D (own D beside the projected D)": {"d_arch": "vision-aided"},
    "stylegan defaults": {"arch": "stylegan"},
    "stylegan with rpgan + R1 + R2 (R3GAN loss)": {"arch": "stylegan", "loss": "rpgan", "r2": None},
    "dcgan with rpgan + R1 + R2 (R3GAN loss)": {"loss": "rpgan", "r1": 0.1, "r2": 0.1, "r1_every": 4},
}
SAMPLE_SEED = 7
def slug(arm: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in arm.lower()).strip("-")[:60]


def run_dir(work: Path, arm: str, cpu_minutes: float) -> Path:
    return work / f"{slug(arm)}-{cpu_minutes:g}cpumin"


def copy_shorter_run(arm: str, work: Path, minutes: float, out: Path) -> None:
    """Copy the arm's finished run of `minutes` CPU-minutes to `out`, to be resumed there."""
    import shutil
    source = run_dir(work, arm, minutes)
    if not (source / "bench.json").exists():
        raise SystemExit(f"--extend-from {minutes:g}: {source} is not a finished run of that budget")
    config = json.loads((source / "config.json").read_text())["config"]
    if config["lr_decay"] != "none" or config["instance_noise"]:
        raise SystemExit(f"{arm}: its schedule depends on the duration, so it cannot be extended")
    if not out.exists():
        shutil.copytree(source, out, ignore=shutil.ignore_patterns("bench.json", "score-*", ".lock"))


def train_arm(arm: str, data: str, work: Path, cpu_minutes: float, threads: int, extend_from: float | None) -> dict:
    out = run_dir(work, arm, cpu_minutes)
    info = out / "bench.json"
    if info.exists():
        return json.loads(info.read_text())
    resume, minutes = [], cpu_minutes
    if extend_from:
        copy_shorter_run(arm, work, extend_from, out)
        resume, minutes = ["--resume"], cpu_minutes - extend_from
    options = ARMS[arm]
    if options.get("r2", 0) is None:  # R3GAN: R2 as strong as the architecture's default R1
        from gansmith.training.config import TrainConfig, resolve
        from gansmith.data import load_images
        images = load_images(data, progress=False)
        r1 = resolve(TrainConfig(**{**options, "r2": 0.0}), images.res, images.channels).r1
        options = {**options, "r2": r1}
    flags = [f for k, v in options.items() for f in
             ([f"--{k.replace('_', '-')}"] if v is True else [f"--{k.replace('_', '-')}", str(v)])]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.time()
    done = subprocess.run([sys.executable, str(HERE / "cpu_clock.py"), data, "--out", str(out), "--minutes",
                           str(minutes), *resume, "--seed", "0", "--no-report", "--quiet", *flags],
                          capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{arm} failed:\n{done.stderr[-3000:]}")
    from gansmith.training.checkpoint import load_checkpoint
    last = load_checkpoint(sorted((out / "checkpoints").glob("step-*.pt"))[-1])
    wall_s = time.time() - started
    if extend_from:
        wall_s += json.loads((run_dir(work, arm, extend_from) / "bench.json").read_text())["wall_s"]
    result = {"steps": last["step"], "kimg": last["images_seen"] / 1000, "wall_s": wall_s, "options": options}
    info.write_text(json.dumps(result))
    return result


def score(arm: str, name: str, data_path: str, work: Path, cpu_minutes: float, n: int, out_dir: Path) -> dict:
    from gansmith.data import load_images
    from gansmith.fileio import atomic_save_image
    from gansmith.generate import generate_images, load_generator
    from gansmith.images import make_grid, to_pil
    from gansmith.metrics import evaluate
    run = run_dir(work, arm, cpu_minutes)
    cache = run / f"score-n{n}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    data = load_images(data_path, progress=False)
    fake = generate_images(load_generator(run)[0], n, seed=SAMPLE_SEED)
    m = evaluate(data, fake, ("fid", "kid", "pr"), n=n)
    grid = out_dir / f"cpu-budget-{name}-{slug(arm)}-{cpu_minutes:g}.png"
    atomic_save_image(grid, to_pil(make_grid(fake[:64])))
    row = {k: m[k] for k in ("fid", "kid", "kid_std", "precision", "recall")}
    if name == "fashion":
        import fashion_classifier
        row["classifier_fd"] = fashion_classifier.fashion_fd(fake, progress=False)["fd"]
    row["grid"] = grid.name
    cache.write_text(json.dumps(row))
    return row


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", choices=list(DATASETS), default="emoji")
    p.add_argument("--cpu-minutes", type=float, default=10)
    p.add_argument("--arms", default=";".join(ARMS), help="semicolon-separated arm names (see ARMS)")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--extend-from", type=float, help="continue each arm's finished run of this many CPU-minutes")
    p.add_argument("--work", default="/tmp/gansmith-cpu-budget")
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args()
    work, out = Path(args.work) / args.data, Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    data_path = DATASETS[args.data] or emoji_split(Path(args.work))[0]
    table = out / "arch_cpu_budget.json"
    rows = json.loads(table.read_text()) if table.exists() else []
    for arm in [a.strip() for a in args.arms.split(";") if a.strip()]:
        trained = train_arm(arm, data_path, work, args.cpu_minutes, args.threads, args.extend_from)
        scores = score(arm, args.data, data_path, work, args.cpu_minutes, args.n, out)
        row = {"data": args.data, "arm": arm, "cpu_minutes": args.cpu_minutes, "threads": args.threads, "n": args.n,
               **trained, **scores, "date": str(datetime.date.today()), "machine": machine(),
               "command": "python benchmarks/arch_cpu_budget.py " + " ".join(sys.argv[1:])}
        rows = [r for r in rows if (r["data"], r["arm"], r["cpu_minutes"], r["n"]) !=
                (row["data"], row["arm"], row["cpu_minutes"], row["n"])] + [row]
        table.write_text(json.dumps(rows, indent=1) + "\n")
        print(json.dumps(row), flush=True)
        write_markdown(rows, out / "arch_cpu_budget.md")


def write_markdown(rows: list[dict], path: Path) -> None:
    lines = ["# Architectures at the same CPU budget", "",
             "Each arm trains until its process has used the budget in CPU time (divided by its threads); FID/KID "
             "and precision/recall of n generated vs n real images; for Fashion-MNIST also the Fréchet distance in a "
             "Fashion-MNIST classifier's features (cannot be gamed by ImageNet features). Generated by "
             "`benchmarks/arch_cpu_budget.py`; the commands are in the rows' JSON (arch_cpu_budget.json).", "",
             "| data | CPU-min | arm | steps | kimg | wall min | FID | KID | precision | recall | classifier FD | grid | date |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["data"], r["cpu_minutes"], r["fid"])):
        cfd = f"{r['classifier_fd']:.2f}" if "classifier_fd" in r else ""
        lines.append(f"| {r['data']} | {r['cpu_minutes']:g} ({r['threads']} thr) | {r['arm']} | {r['steps']:,} | "
                     f"{r['kimg']:.1f} | {r['wall_s'] / 60:.1f} | {r['fid']:.1f} | {r['kid']:.4f} | "
                     f"{r['precision']:.3f} | {r['recall']:.3f} | {cfd} | {r['grid']} | {r['date']} |")
    machines = sorted({r["machine"] for r in rows})
    lines += ["", "Machines: " + "; ".join(machines)]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
