"""`gansmith demo`, `gansmith doctor`: a first run, and how a run is doing (light imports: --help is instant)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import UserError
from . import Finite, cli


def show_outputs(run: Path) -> None:
    """Where a finished run's results are, and what to do next."""
    report = run / "report.html"
    click.echo(f"samples:     {run / 'samples' / 'latest.png'}")
    click.echo(f"report:      {report}  (open it in a browser)" if report.is_file()
               else f"report:      gansmith report {run}  (writes {report})")
    click.echo(f"checkpoints: {run / 'checkpoints'}")
    click.echo(f"metrics:     {run / 'metrics.jsonl'}  (tensorboard --logdir {run / 'events'})")
    click.echo(f"next:        gansmith doctor {run}   ·   gansmith sample {run} -n 64 -o grid.png")


@cli.command(epilog="""\b
Examples:
  gansmith demo                  # 4 minutes into runs/demo (runs/demo-2, ... if taken)
  gansmith demo --minutes 1 --out /tmp/first-run""")
@click.option("--out", "-o", default="runs/demo", help="run folder; a new one if it exists  [default: runs/demo]")
@click.option("--minutes", type=Finite(min=0, min_open=True), default=4.0, help="training time  [default: 4]")
@click.option("--quiet", is_flag=True, help="no progress bar (nor its plain lines when not on a terminal)")
def demo(out, minutes, quiet):
    """Train a few minutes on the built-in Fashion-MNIST and show where the results are."""
    from ..training import TrainConfig, train as run_training
    out = unused_folder(out)
    click.echo(f"training on the built-in Fashion-MNIST (10,000 images) for {minutes:g} minutes into {out}", err=True)
    result = run_training(TrainConfig(data="builtin:fashion-mnist", out=str(out), minutes=minutes),
                          progress=not quiet)
    show_outputs(out)
    if result.interrupted:
        sys.exit(130)


def unused_folder(out: str) -> Path:
    """`out`, or out-2, out-3 ... : the first that does not hold anything yet."""
    if not out.strip():
        raise UserError("--out must name a folder, not an empty string")
    path = Path(out) if Path(out).name else Path(out).absolute()  # "." or "..": name it, so a sibling can be chosen
    candidate, i = path, 1
    while candidate.exists() and any(candidate.iterdir()):
        i += 1
        candidate = path.with_name(f"{path.name}-{i}")
    return candidate


@cli.command(epilog="""\b
Examples:
  gansmith doctor runs/shoes          # while it trains, or after
  gansmith doctor runs/shoes --json""")
@click.argument("run", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="print the summary as one JSON object")
def doctor(run, as_json):
    """Say in plain language how a finished or running RUN is doing, and what to do about it."""
    import json
    from ..doctor import summarize
    from ..training.run import RunFolder
    folder = RunFolder(run)
    if not folder.metrics_file.is_file():
        raise UserError(f"{run} has no metrics.jsonl (is it a gansmith run folder that has trained a while?)")
    summary = summarize(folder.read_metrics())
    if as_json:
        click.echo(json.dumps(summary))
        return
    last = summary["last"]
    click.echo(f"{run}: {summary['kimg']:g} kimg, step {summary['step']}")
    if last:
        click.echo(f"  latest: D loss {last['loss_d']:.3f}, G loss {last['loss_g']:.3f}, "
                   f"D(real) {last['d_real']:.2f}, D(fake) {last['d_fake']:.2f}"
                   + (f", FID {last['fid']:.2f}" if "fid" in last else ""))
    for e in summary["events"]:
        step = e.get("evidence", {}).get("step", "?")
        click.echo(f"  [{e['severity']}] step {step}: {e['message']}")
        if e.get("remedy"):
            click.echo(f"      remedy: {e['remedy']}" + ("  (applied by --auto-fix)" if e.get("applied") else ""))
    click.echo(summary["verdict"])
