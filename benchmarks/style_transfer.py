"""Style transfer benchmark: gansmith's default (coarse-to-fine, L-BFGS) against the textbook baseline
(benchmarks/style_baseline.py), side by side in one run, on the shipped example (astronaut, Starry Night).

For each size, each method runs in a fresh subprocess (so that peak RSS, from getrusage, is its own):
the baseline for --baseline-evals closure evaluations, and gansmith's defaults (and any --candidate
settings), all at the same time so that on a shared CPU they see the same load. Each records its loss after
every evaluation; 'reaches baseline total' is when its loss at the final size first reached the baseline's
final loss. 'full-size evaluations' counts evaluations weighted by pixels (a 256 px one is 1/4 of a 512 px
one): the cost, independent of the CPU's load; 'CPU s' is the worker's own CPU time (user + system), which other
jobs on a shared machine do not inflate, so 'CPU vs baseline' is the ratio to trust there.
Losses are gansmith's (same VGG19, layers, weights and normalization) evaluated on the final image. The
pictures go side by side into benchmarks/results/style_SIZE_side_by_side.png.

    python benchmarks/style_transfer.py --sizes 512 --baseline-evals 100 --threads 1
    python benchmarks/style_transfer.py --sizes 512 --candidate '{"steps": 60, "final_steps": 20}'
"""
from __future__ import annotations

import argparse
import json
import os
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
    from gansmith.style.stylize import load_image
    from style_baseline import default_objective
    objective, _ = default_objective(model, load_image(CONTENT), load_image(STYLE), size)
    return summarize(objective(image)[1])


def worker(method: str, size: int, evals: int, options: dict, picture: str) -> dict:
    """Runs in the subprocess: one method at one size; returns times, losses and peak RSS."""
    import torch
    from gansmith.style import transfer
    from gansmith.style.stylize import load_image, tensor_to_pil, to_tensor
    from gansmith.style.vgg import load_vgg19
    from style_baseline import run_baseline

    model = load_vgg19()
    start, cpu_start, trace = time.perf_counter(), time.process_time(), []
    if method == "baseline":
        image = run_baseline(model, load_image(CONTENT), load_image(STYLE), size, evals,
                             on_eval=lambda n, loss: trace.append((time.perf_counter() - start, loss)))
        image = to_tensor(tensor_to_pil(image), tuple(image.shape[2:]))   # rounded to uint8 like ours
    else:
        def on_step(step):
            trace.append((time.perf_counter() - start, step.losses["total"], step.size[0] * step.size[1]))

        result = transfer(CONTENT, STYLE, size=size, model=model, on_step=on_step, **options)
        image = to_tensor(result, (result.size[1], result.size[0]))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    tensor_to_pil(image).save(picture)
    losses = _final_losses(model, image, size)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pixels = image.shape[2] * image.shape[3]
    full_size = [(round(t, 2), round(l, 5)) for t, l, *level in trace if not level or level[0] == pixels]
    pixel_evals = sum((level[0] if level else pixels) for _, _, *level in trace) / pixels
    return {"method": method, "options": options, "size": size, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "evaluations": len(trace),
            "full_size_evaluations": pixel_evals, "trace": [(round(t, 2), round(l, 5)) for t, l, *_ in trace],
            "full_size_trace": full_size,
            "losses": losses, "peak_rss_mb": rss_mb, "threads": torch.get_num_threads()}


def _start(method: str, size: int, evals: int, options: dict, threads: int, picture: Path) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--worker", method, "--sizes", str(size), "--baseline-evals", str(evals),
           "--threads", str(threads), "--options", json.dumps(options), "--picture", str(picture)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)


def _result(process: subprocess.Popen) -> dict:
    out, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"worker failed with exit code {process.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def _report(rows: list[list[dict]], evals: int, command: str) -> str:
    lines = [
        "# Style transfer benchmark",
        "",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine()}; the workers ran {rows[0][0]['threads']} threads",
        f"- command: `{command}`",
        "- content: shipped astronaut photo; style: shipped Starry Night; losses are gansmith's "
        "(content relu4_2, style relu1_1..relu5_1, relative-error normalization, default weights)",
        f"- baseline: `benchmarks/style_baseline.py` (PyTorch tutorial: single scale, L-BFGS defaults, "
        f"at least {evals} closure evaluations, finishing the L-BFGS step); ours: `gansmith.style.transfer` "
        f"with its defaults or the settings shown; 'wall vs baseline' = ours' wall time / the baseline's; "
        f"'reaches baseline total' is the first iteration at full size whose total loss is at most the "
        f"baseline's final total",
        "- the CPU was shared with other jobs during the run: compare rows of one size with each other, "
        "not absolute times across runs",
        "",
        "| size | method | wall s | wall vs baseline | CPU s | CPU vs baseline | evaluations | full-size evaluations | "
        "total | content | style | tv | peak RSS MB | reaches baseline total at s | baseline's total at ours' wall time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for base, *others in rows:
        for r in (base, *others):
            l = r["losses"]
            reach = _reached(base, r) if r["method"] == "ours" else r["seconds"]
            reach_text = "not reached" if reach is None else f"{reach:.0f}"
            options = json.dumps(r["options"]) if r["options"] else "(defaults)"
            name = "baseline" if r["method"] == "baseline" else f"ours {options}"
            lines.append(f"| {r['size']} | {name} | {r['seconds']:.0f} | {r['seconds'] / base['seconds']:.2f} | "
                         f"{r['cpu_seconds']:.0f} | {r['cpu_seconds'] / base['cpu_seconds']:.2f} | "
                         f"{r['evaluations']} | {r['full_size_evaluations']:.1f} | {l['total']:.4f} | "
                         f"{l['content']:.4f} | {l['style']:.4f} | "
                         f"{l['tv']:.4f} | {r['peak_rss_mb']:.0f} | {reach_text} | {_same_time(r, base)} |")
    return "\n".join(lines) + "\n"


def _reached(base: dict, ours: dict) -> float | None:
    """Seconds until ours first logged a full-size loss at most the baseline's final loss; if it never did,
    its finishing time when its final image scores at most that (the last step is not logged)."""
    target = base["losses"]["total"]
    reached = [t for t, loss in ours["full_size_trace"] if loss <= target]
    if reached:
        return reached[0]
    return ours["seconds"] if ours["losses"]["total"] <= target else None


def _same_time(row: dict, base: dict) -> str:
    """The baseline's total loss after as much time as ours took (its last evaluation by then)."""
    if row["method"] != "ours":
        return ""
    before = [loss for t, loss in base["trace"] if t <= row["seconds"]]
    return f"{before[-1]:.4f}" if before else "(not started)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512")
    parser.add_argument("--baseline-evals", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--candidate", action="append", default=[],
                        help="JSON settings for an extra 'ours' run, e.g. '{\"final_steps\": 20}'")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/style_transfer.md"))
    parser.add_argument("--worker", choices=["baseline", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--picture", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.worker:
        import torch
        torch.set_num_threads(args.threads)
        print(json.dumps(worker(args.worker, sizes[0], args.baseline_evals, json.loads(args.options),
                                args.picture)))
        return
    from gansmith.style.stylize import load_image, side_by_side
    rows, results = [], ROOT / "benchmarks/results"
    for size in sizes:
        picture = lambda name: results / f"style_{size}_{name}.png"
        candidates = [{}] + [json.loads(c) for c in args.candidate]
        # All arms at once: on a shared CPU they then see the same load, and the wall times compare.
        workers = [_start("baseline", size, args.baseline_evals, {}, args.threads, picture("baseline"))]
        workers += [_start("ours", size, args.baseline_evals, options, args.threads, picture(f"ours{i or ''}"))
                    for i, options in enumerate(candidates)]
        row = [_result(w) for w in workers]
        print(json.dumps(row), flush=True)
        rows.append(row)
        strip = side_by_side([load_image(CONTENT), load_image(STYLE), load_image(picture("baseline"))]
                             + [load_image(picture(f"ours{i or ''}")) for i in range(len(candidates))])
        strip.save(results / f"style_{size}_side_by_side.png")
        for i in range(len(candidates)):
            picture(f"ours{i or ''}").unlink()
        picture("baseline").unlink()
    report = _report(rows, args.baseline_evals, "python benchmarks/style_transfer.py " + " ".join(
        f"'{a}'" if "{" in a else a for a in sys.argv[1:]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
