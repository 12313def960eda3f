"""Style transfer benchmark: gansmith's default (coarse-to-fine, L-BFGS) against the textbook baseline
(benchmarks/style_baseline.py), side by side in one run, on the shipped example (astronaut, Starry Night).

For each size, each method runs in a fresh subprocess (so that peak RSS, from getrusage, is its own):
1. the baseline for --baseline-evals closure evaluations; its final total loss becomes the target;
2. gansmith's default settings, recording when its loss at the final size first reaches that target.
Losses are gansmith's (same VGG19, layers, weights and normalization) evaluated on the final image.

    python benchmarks/style_transfer.py --sizes 256,512 --baseline-evals 100
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "gansmith/style/examples/astronaut.jpg"
STYLE = ROOT / "gansmith/style/examples/starry_night.jpg"
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import machine  # noqa: E402


def _final_losses(model, image, size) -> dict:
    from gansmith.style.losses import summarize
    from gansmith.style.transfer import load_image
    from style_baseline import default_objective
    objective, _ = default_objective(model, load_image(CONTENT), load_image(STYLE), size)
    return summarize(objective(image)[1])


def worker(method: str, size: int, evals: int, target: float | None) -> dict:
    """Runs in the subprocess: one method at one size; returns times, losses and peak RSS."""
    import torch
    from gansmith.style import transfer
    from gansmith.style.transfer import load_image, to_pil, to_tensor
    from gansmith.style.vgg import load_vgg19
    from style_baseline import run_baseline

    model = load_vgg19()
    start, reached, trace = time.perf_counter(), None, []
    if method == "baseline":
        image = run_baseline(model, load_image(CONTENT), load_image(STYLE), size, evals,
                             on_eval=lambda n, loss: trace.append((time.perf_counter() - start, loss)))
        image = to_tensor(to_pil(image), tuple(image.shape[2:]))   # rounded to uint8 like ours
    else:
        def on_step(step):
            nonlocal reached
            total = step.losses["total"]
            trace.append((time.perf_counter() - start, total, step.size))
            if reached is None and max(step.size) == size and target is not None and total <= target:
                reached = time.perf_counter() - start

        result = transfer(CONTENT, STYLE, size=size, model=model, on_step=on_step)
        image = to_tensor(result, (result.size[1], result.size[0]))
    seconds = time.perf_counter() - start
    losses = _final_losses(model, image, size)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"method": method, "size": size, "seconds": seconds, "reached_target_s": reached,
            "evaluations": len(trace), "trace": [(round(t, 2), round(l, 5)) for t, l, *_ in trace],
            "losses": losses, "peak_rss_mb": rss_mb, "threads": torch.get_num_threads()}


def _spawn(method: str, size: int, evals: int, target: float | None) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--sizes", str(size), "--baseline-evals", str(evals)]
    if target is not None:
        cmd += ["--target", repr(target)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def _report(rows: list[tuple[dict, dict]], evals: int) -> str:
    lines = [
        "# Style transfer benchmark",
        "",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine()}; the workers ran {rows[0][0]['threads']} threads",
        "- content: shipped astronaut photo; style: shipped Starry Night; losses are gansmith's "
        "(content relu4_2, style relu1_1..relu5_1, relative-error normalization, default weights)",
        f"- baseline: `benchmarks/style_baseline.py` (PyTorch tutorial: single scale, L-BFGS defaults, "
        f"at least {evals} closure evaluations, finishing the L-BFGS step); ours: `gansmith.style.transfer` "
        f"defaults; 'reaches baseline loss' is the first iteration at full size whose loss is at most the "
        f"baseline's final loss, speed-up = baseline wall time / that time",
        "- the CPU was shared with other jobs during the run: compare the two columns of one row, "
        "not absolute times across runs",
        "",
        "| size | method | wall s | evaluations | total | content | style | tv | peak RSS MB | "
        "reaches baseline loss at s | speed-up | baseline's loss at ours' wall time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for base, ours in rows:
        for r in (base, ours):
            l = r["losses"]
            reach = _reached(base, ours) if r["method"] == "ours" else r["seconds"]
            reach_text = "not reached" if reach is None else f"{reach:.0f}"
            speed = (f"{base['seconds'] / reach:.1f}x" if r["method"] == "ours" and reach else "")
            lines.append(f"| {r['size']} | {r['method']} | {r['seconds']:.0f} | {r['evaluations']} | "
                         f"{l['total']:.4f} | {l['content']:.4f} | {l['style']:.4f} | {l['tv']:.4f} | "
                         f"{r['peak_rss_mb']:.0f} | {reach_text} | {speed} | {_same_time(r, base, ours)} |")
    return "\n".join(lines) + "\n"


def _reached(base: dict, ours: dict) -> float | None:
    """Seconds until ours first logged a full-size loss at most the baseline's final loss; if it never did,
    its finishing time when its final image scores at most that (the last step is not logged)."""
    if ours["reached_target_s"] is not None:
        return ours["reached_target_s"]
    return ours["seconds"] if ours["losses"]["total"] <= base["losses"]["total"] else None


def _same_time(row: dict, base: dict, ours: dict) -> str:
    """The baseline's total loss after as much time as ours took (its last evaluation by then)."""
    if row["method"] != "ours":
        return ""
    before = [loss for t, loss in base["trace"] if t <= ours["seconds"]]
    return f"{before[-1]:.4f}" if before else "(not started)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--baseline-evals", type=int, default=100)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/style_transfer.md"))
    parser.add_argument("--worker", choices=["baseline", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--target", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.worker:
        print(json.dumps(worker(args.worker, sizes[0], args.baseline_evals, args.target)))
        return
    rows = []
    for size in sizes:
        base = _spawn("baseline", size, args.baseline_evals, None)
        print(json.dumps(base), flush=True)
        ours = _spawn("ours", size, args.baseline_evals, base["losses"]["total"])
        print(json.dumps(ours), flush=True)
        rows.append((base, ours))
    report = _report(rows, args.baseline_evals)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
