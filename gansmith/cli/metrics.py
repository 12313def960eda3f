"""`gansmith fid A B` and `gansmith eval RUN`."""
from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import click

from ..errors import UserError
from ..fileio import atomic_write_json
from . import cli, seed_type

DEFAULT_EVAL_N = 5000


@contextmanager
def warnings_as_lines():
    """Show warnings raised inside as one `warning: ...` line each on stderr (stdout stays clean for --json)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                click.echo(f"warning: {w.message}", err=True)


def _check_options(n: int | None, batch: int) -> None:
    if n is not None and n < 2:
        raise UserError(f"--n must be at least 2, not {n}")
    if batch is not None and batch < 1:
        raise UserError(f"--batch must be at least 1, not {batch}")


def _load(spec: str, **kwargs):
    from ..data import load_images
    return load_images(spec, **kwargs)


@cli.command()
@click.argument("a")
@click.argument("b")
@click.option("--n", type=int, default=None, help="use at most N images of each set (a fixed random subset)")
@click.option("--batch", type=int, default=None,
              help="images per Inception forward pass  [default: the fastest measured, metrics.FEATURE_BATCH]")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of text")
def fid(a, b, n, batch, as_json):
    """FID and KID between two image sets A and B (folders or any DATA spec). B is loaded at A's resolution."""
    from .. import metrics
    _check_options(n, batch)
    with warnings_as_lines():
        data_a = _load(a, progress=not as_json)
        data_b = _load(b, res=data_a.res, progress=not as_json)
        n_a, n_b = (d.n if n is None else min(n, d.n) for d in (data_a, data_b))
        if min(n_a, n_b) < 2:
            raise UserError(f"FID needs at least 2 images per set; {a} has {n_a}, {b} has {n_b}")
        batch = batch or metrics.FEATURE_BATCH
        feats_a = metrics.real_features(data_a, n_a, batch=batch, progress=not as_json)
        feats_b = metrics.real_features(data_b, n_b, batch=batch, progress=not as_json)
        fid_value = metrics.fid_from_features(feats_a, feats_b)
        kid, kid_std = metrics.kid_from_features(feats_a, feats_b)
    if as_json:
        click.echo(json.dumps({"fid": fid_value, "kid": kid, "kid_std": kid_std, "n_a": n_a, "n_b": n_b}))
    else:
        click.echo(f"FID  {fid_value:.4f}   (A: {n_a} images, B: {n_b} images, {data_a.res}px)")
        click.echo(f"KID  {_kid_text(kid, kid_std)}")


def _kid_text(kid: float, kid_std: float) -> str:
    # std 0: both sets fit in one subset, so there was nothing to resample (see metrics.kid)
    return f"{kid:.6f} ± {kid_std:.6f}" if kid_std > 0 else f"{kid:.6f} (one subset of all images)"


def _run_data_spec(run: Path) -> tuple[str, str]:
    """The run's own DATA spec and fit mode, from RUN/config.json."""
    path = run / "config.json"
    try:
        config = json.loads(path.read_text())["config"]
        return config["data"], config.get("fit", "crop")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"cannot read the data spec from {path} ({type(e).__name__}: {e}); pass --real DATA") from None


def format_table(results: dict) -> str:
    rows = []
    for key, value in results.items():
        if key == "kid_std":
            continue
        text = _kid_text(value, results["kid_std"]) if key == "kid" else (
            f"{value:.4f}" if isinstance(value, float) else str(value))
        rows.append(f"{key:<22}{text}")
    return "\n".join(rows)


@cli.command(name="eval")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--real", "real_spec", default=None, help="real data to compare with [default: the run's own data]")
@click.option("--n", type=int, default=DEFAULT_EVAL_N, show_default=True,
              help="generated images, and at most this many real ones")
@click.option("--metrics", "metric_names", default="fid,kid,pr", show_default=True,
              help="comma-separated: fid, kid, pr (precision/recall), nn (nearest training images; "
                   "also writes RUN/nearest.png)")
@click.option("--checkpoint", default="latest", show_default=True, help="latest, best or a checkpoint path")
@click.option("--seed", type=seed_type(), default=0, show_default=True, help="seed of the generated images")
@click.option("--batch", type=int, default=None,
              help="images per Inception forward pass  [default: the fastest measured, metrics.FEATURE_BATCH]")
def eval_(run, real_spec, n, metric_names, checkpoint, seed, batch):
    """Measure a trained run against real data; prints a table and writes RUN/eval.json."""
    from .. import metrics
    from ..generate import generate_images, load_generator
    names = metrics.parse_metrics(metric_names)
    _check_options(n, batch)
    if not run.is_dir():
        raise UserError(f"{run} is not a run folder")
    spec, fit = (real_spec, "crop") if real_spec else _run_data_spec(run)
    with warnings_as_lines():
        G, _ = load_generator(run, which=checkpoint)
        fake = generate_images(G, n, seed=seed)
        real = _load(spec, res=fake.shape[1], channels=fake.shape[3], fit=fit)
        batch = batch or metrics.FEATURE_BATCH
        results = metrics.evaluate(real, fake, names, n=n, batch=batch, progress=True,
                                   nearest_png=run / "nearest.png" if "nn" in names else None)
    click.echo(format_table(results))
    atomic_write_json(run / "eval.json", {
        "metrics": results, "n": n, "real": spec, "checkpoint": checkpoint, "seed": seed,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    click.echo(f"wrote {run / 'eval.json'}" + (f" and {run / 'nearest.png'}" if "nn" in names else ""))
