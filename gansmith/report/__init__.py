"""`write_report(run_dir)`: RUN/report.html, one self-contained page a user can open in a browser and share.

It shows what the run folder holds right now (config.json, metrics.jsonl, samples/grid-STEP.png, eval.json,
nearest.png) and says what is missing, so it can be written at any point of a run, even before the first
metrics. Training refreshes it at every sample interval with `refresh_report`.
"""
from __future__ import annotations

import io
import json
import re
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from .. import __version__
from ..doctor import too_short_to_judge
from ..errors import UserError
from ..fileio import atomic_write_text
from ..text import duration
from . import html
from .html import Finding, Picture, Report
from .plots import data_uri, number, quality_charts, training_charts

MAX_GRIDS = 9          # evenly spaced over training, the last one the latest
MAX_FINDINGS = 200     # the most recent ones
# Larger images are scaled down before embedding, to keep the page small.
LATEST_SIDE, THUMBNAIL_SIDE, GALLERY_SIDE = 1024, 512, 1600
GRID_NAME = re.compile(r"grid-(\d+)\.png$")

if TYPE_CHECKING:
    from ..training.run import RunFolder


def write_report(run_dir: str | Path) -> Path:
    """Write RUN/report.html from what the run folder holds now; returns its path."""
    from ..training.run import RunFolder  # here, so that the training loop can import this module
    run = RunFolder(run_dir)
    if not run.path.is_dir():
        raise UserError(f"{run.path} is not a folder")
    if not any(p.exists() for p in (run.config_file, run.metrics_file, run.samples, run.checkpoints)):
        raise UserError(f"{run.path} is not a gansmith run folder (no config.json, metrics.jsonl, samples/ or checkpoints/)")
    path = run.path / "report.html"
    atomic_write_text(path, html.render(build_report(run)))
    return path


def refresh_report(run_dir: str | Path) -> Path | None:
    """`write_report` for the training loop: a failure becomes a warning and never ends the run."""
    try:
        return write_report(run_dir)
    except Exception as e:  # noqa: BLE001  (the report is a convenience; training must go on)
        warnings.warn(f"could not refresh the report in {run_dir}: {type(e).__name__}: {e}")
        return None


def build_report(run: RunFolder) -> Report:
    config = run.read_config()
    config = config if isinstance(config, dict) else None
    records = [r for r in run.read_metrics() if isinstance(r, dict)]
    findings = collect_findings(records)
    report = Report(name=run.path.resolve().name, details=header_details(run, config),
                    generated=time.strftime("%Y-%m-%d %H:%M:%S %Z"), version=__version__, config=config,
                    charts=training_charts(records), quality=quality_charts(records),
                    findings=findings[-MAX_FINDINGS:], findings_dropped=max(0, len(findings) - MAX_FINDINGS),
                    too_short=too_short_to_judge(records),
                    evaluation=read_json(run.path / "eval.json"))
    report.evaluation_rows = evaluation_rows(report.evaluation)
    report.latest, report.timeline = sample_grids(run.samples, records, train_option(config, "batch"), report.notes)
    report.nearest = embed(run.path / "nearest.png", "nearest training images", GALLERY_SIDE, report.notes)
    report.model_pictures = model_pictures(run.samples, report.notes)
    report.summary = summary(config, records, findings, report.evaluation)
    if config is None:
        report.notes.append("config.json is missing or unreadable: this report shows what the run folder has.")
    return report


def read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def train_option(config: dict | None, key: str):
    options = (config or {}).get("config")
    return options.get(key) if isinstance(options, dict) else None


# --- images ------------------------------------------------------------------------------------------
def embed(path: Path, label: str, max_side: int, notes: list[str]) -> Picture | None:
    """An image file as an embedded PNG (scaled down to max_side), or None if absent; unreadable -> a note."""
    if not path.is_file():
        return None
    try:
        with Image.open(path) as img:
            img.load()
            img = img if img.mode in ("L", "RGB", "RGBA") else img.convert("RGB")
            img.thumbnail((max_side, max_side), Image.LANCZOS)
            buf = io.BytesIO()
            img.save(buf, format="PNG")
    except (OSError, ValueError) as e:
        notes.append(f"{path.name} could not be read ({e}).")
        return None
    return Picture(data_uri(buf.getvalue()), label, img.width, img.height)


def pick_evenly(items: list, k: int) -> list:
    """Up to k items spread evenly from the first to the last."""
    if len(items) <= k:
        return items
    return [items[i] for i in sorted({round(j * (len(items) - 1) / (k - 1)) for j in range(k)})]


def step_label(step: int, records: list[dict], batch) -> str:
    """'2.05 kimg · step 32': kimg from the metrics record of that step, else from the batch size."""
    kimg = next((r["kimg"] for r in records if r.get("step") == step and number(r.get("kimg")) is not None), None)
    if kimg is None and isinstance(batch, int):
        kimg = step * batch / 1000
    return f"step {step}" if kimg is None else f"{kimg:.3g} kimg · step {step}"


def sample_grids(samples: Path, records: list[dict], batch, notes: list[str]) -> tuple[Picture | None, list[Picture]]:
    """The latest grid, large, and up to MAX_GRIDS grids spread over training (the latest included), small."""
    found = sorted((int(m.group(1)), p) for p in samples.glob("grid-*.png") if (m := GRID_NAME.search(p.name)))
    timeline = [embed(path, step_label(step, records, batch), THUMBNAIL_SIDE, notes)
                for step, path in pick_evenly(found, MAX_GRIDS)]
    timeline = [p for p in timeline if p is not None]
    if not found:
        return None, timeline
    step, path = found[-1]
    return embed(path, f"latest: {step_label(step, records, batch)}", LATEST_SIDE, notes), timeline


def model_pictures(samples: Path, notes: list[str]) -> list[Picture]:
    """The other pictures a model left in samples/ (an architecture's `pictures`, e.g. StyleGAN's truncation)."""
    paths = sorted(p for p in samples.glob("*.png") if not GRID_NAME.search(p.name) and p.name != "latest.png")
    return [p for path in paths if (p := embed(path, path.stem.replace("-", " "), LATEST_SIDE, notes))]


# --- findings and summary ----------------------------------------------------------------------------
def collect_findings(records: list[dict]) -> list[Finding]:
    findings = []
    for r in records:
        events = r.get("events")
        for e in events if isinstance(events, list) else []:
            if isinstance(e, dict):
                findings.append(Finding(number(r.get("kimg")), str(e.get("kind", "")), str(e.get("severity", "info")),
                                        str(e.get("message", "")), e.get("evidence"), str(e.get("remedy", "")),
                                        e.get("applied") is True))
    return findings


def pair(record: dict, a: str, b: str, digits: int) -> str | None:
    x, y = number(record.get(a)), number(record.get(b))
    return None if x is None or y is None else f"{x:.{digits}f} / {y:.{digits}f}"


def header_details(run: RunFolder, config: dict | None) -> list[str]:
    """The run's path, data, creation time and resumes, as far as known."""
    details = [str(run.path.resolve())]
    data = (config or {}).get("data")
    if isinstance(data, dict) and "source" in data:
        details.append(f"{data['source']}: {data.get('n', '?')} images, {data.get('res', '?')} px")
    if config and config.get("created"):
        details.append(f"created {config['created']}")
    resumed = (config or {}).get("resumed")
    if isinstance(resumed, list) and resumed:
        details.append(f"resumed {resumed[-1]}" if len(resumed) == 1 else
                       f"resumed {len(resumed)} times, last {resumed[-1]}")
    return details


def summary(config: dict | None, records: list[dict], findings: list[Finding], evaluation: dict | None) -> list[tuple[str, str]]:
    """The headline numbers: progress, time, speed, the latest losses, FID, findings."""
    items = []
    last = records[-1] if records else {}
    target = train_option(config, "kimg")
    if number(last.get("kimg")) is not None:
        items.append(("progress", f"{last['kimg']:.3g} / {target:g} kimg" if number(target) else f"{last['kimg']:.3g} kimg"))
    if number(last.get("seconds")) is not None:
        items.append(("training time", duration(last["seconds"])))
    if (number(last.get("kimg")) or 0) > 0 and (number(last.get("seconds")) or 0) > 0:
        items.append(("average speed", f"{last['kimg'] * 1000 / last['seconds']:.0f} img/s"))
    for label, a, b, digits in (("loss G / D", "loss_g", "loss_d", 3), ("D(real) / D(fake)", "d_real", "d_fake", 2)):
        if (text := pair(last, a, b, digits)) is not None:
            items.append((label, text))
    fid, n = next(((r["fid"], train_option(config, "eval_n")) for r in reversed(records)
                   if number(r.get("fid")) is not None), (None, None))
    if fid is None and evaluation and isinstance(evaluation.get("metrics"), dict):
        fid, n = evaluation["metrics"].get("fid"), evaluation["metrics"].get("n_fake", evaluation.get("n"))
    if number(fid) is not None:
        items.append(("FID", f"{fid:.2f}" + (f" (n={n:,})" if isinstance(n, int) else "")))
    if findings:
        items.append(("findings", html.tally(findings)))
    return items


def evaluation_rows(evaluation: dict | None) -> list[tuple[str, str, str]]:
    """eval.json's metrics as (name, value, what it means) rows."""
    from ..metrics import described
    metrics = (evaluation or {}).get("metrics")
    return described(metrics) if isinstance(metrics, dict) else []
