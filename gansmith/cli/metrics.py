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
from ..text import duration
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


ESTIMATE_ABOVE = 200  # images: below this, features take seconds and are not worth timing beforehand
DEVICE_HELP = "auto (CUDA when present, else the CPU), cpu, cuda[:N] or mps  [default: auto]"
BATCH_HELP = "images per Inception forward pass  [default: 8, the fastest measured on a CPU]"


def _check_options(n: int | None, batch: int) -> None:
    if n is not None and n < 2:
        raise UserError(f"-n must be at least 2, not {n}")
    if batch is not None and batch < 1:
        raise UserError(f"--batch must be at least 1, not {batch}")


def _load(spec: str, **kwargs):
    from ..data import load_images
    return load_images(spec, **kwargs)


def _device(name: str):
    from ..system import resolve_device
    if name != "auto" and name.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device must be auto, cpu, cuda[:N] or mps, not {name!r}")
    return resolve_device(name)


def say_estimate(n_images: int, batch: int, device) -> None:
    """Before long feature extraction: how long it will take here, from one timed batch."""
    if n_images < ESTIMATE_ABOVE:
        return
    from .. import metrics
    per_image = metrics.seconds_per_image(batch, device)
    click.echo(f"Inception features of {n_images:,} images: about {duration(n_images * per_image)} on this "
               f"{device.type} ({per_image:.3f} s per image, measured now)", err=True)


class Side:
    """One side of `gansmith fid`: an image set (features) or precomputed statistics (mu, sigma)."""

    def __init__(self, spec: str, n: int | None, batch: int, device, progress: bool, res: int | None = None):
        from .. import metrics
        self.spec, self.feats = spec, None
        if metrics.is_stats_file(spec):
            self.mu, self.sigma, self.n = metrics.load_stats(spec)
            self.res = None
            return
        self.data = _load(spec, res=res, progress=progress)
        self.n, self.res = (self.data.n if n is None else min(n, self.data.n)), self.data.res
        self.args = dict(batch=batch, progress=progress, device=device)

    def images_to_compute(self) -> int:
        from .. import metrics
        return 0 if self.res is None or metrics.features_cached(self.data, self.n) else self.n

    def features(self, label: str):
        from .. import metrics
        if self.feats is None and self.res is not None:
            self.feats = metrics.real_features(self.data, self.n, label=label, **self.args)
        return self.feats

    def stats(self):
        from .. import metrics
        return (self.mu, self.sigma) if self.res is None else metrics.feature_stats(self.features(""))

    def describe(self) -> str:
        return self.spec + (f" ({self.n:,} images)" if self.n else " (statistics)")


@cli.command(epilog="""\b
Examples:
  gansmith fid real/ generated/ --json
  gansmith fid real/ --save-stats real_stats.npz      # mu, sigma as pytorch-fid writes them
  gansmith fid real_stats.npz generated/ -n 5000""")
@click.argument("a")
@click.argument("b", required=False)
@click.option("-n", "--n", "n", type=int, default=None,
              help="use at most N images of each set (a fixed random subset)  [default: all]")
@click.option("--save-stats", type=click.Path(dir_okay=False), default=None,
              help="write A's FID statistics (mu, sigma, n) to this .npz; B is then optional")
@click.option("--batch", type=int, default=None, help=BATCH_HELP)
@click.option("--device", default="auto", help=DEVICE_HELP)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of text")
def fid(a, b, n, save_stats, batch, device, as_json):
    """FID and KID between two image sets A and B: folders, any DATA spec, or an .npz of precomputed statistics
    (arrays mu and sigma, as pytorch-fid and --save-stats write them; then only FID, as KID needs the images).
    B is loaded at A's resolution."""
    from .. import metrics
    _check_options(n, batch)
    if b is None and not save_stats:
        raise UserError("give a second image set B to compare with, or --save-stats FILE.npz to save A's statistics")
    device, batch, progress = _device(device), batch or metrics.FEATURE_BATCH, not as_json
    with warnings_as_lines():
        side_a = Side(a, n, batch, device, progress)
        if save_stats and side_a.res is None:
            raise UserError(f"{a} already holds statistics; --save-stats needs images")
        side_b = Side(b, n, batch, device, progress, res=side_a.res) if b else None
        if min(s.n or 2 for s in (side_a, side_b) if s) < 2:
            raise UserError(f"FID needs at least 2 images per set; {side_a.describe()}"
                            + (f", {side_b.describe()}" if side_b else ""))
        if progress:
            say_estimate(sum(s.images_to_compute() for s in (side_a, side_b) if s), batch, device)
        if save_stats:
            metrics.save_stats(save_stats, side_a.features("A"))
            click.echo(f"wrote {save_stats} (FID statistics of {side_a.n:,} images of {a}, {side_a.res} px)",
                       err=as_json)
        if side_b is None:
            return
        result = compare(side_a, side_b)
    if as_json:
        click.echo(json.dumps(result))
        return
    res = f", {side_a.res or side_b.res} px" if (side_a.res or side_b.res) else ""
    click.echo(f"FID  {result['fid']:.4f}   (A: {side_a.describe()}, B: {side_b.describe()}{res})")
    from ..metrics.kid import kid_text
    click.echo("KID  " + (kid_text(result["kid"], result["kid_std"]) if result["kid"] is not None else
                          "not available: a side is statistics, and KID needs the images' features"))


def compare(a: Side, b: Side) -> dict:
    """FID (from features, or from statistics when a side has only those) and KID (None without features)."""
    from .. import metrics
    if a.res is not None and b.res is not None:
        fa, fb = a.features("A"), b.features("B")
        fid_value = metrics.fid_from_features(fa, fb)
        kid, kid_std = metrics.kid_from_features(fa, fb)
    else:
        fid_value = metrics.fid_from_stats(*a.stats(), *b.stats())
        kid, kid_std = None, None
    return {"fid": fid_value, "kid": kid, "kid_std": kid_std, "n_a": a.n, "n_b": b.n}


def _run_data_spec(run: Path) -> tuple[str, str]:
    """The run's own DATA spec and fit mode, from RUN/config.json."""
    path = run / "config.json"
    try:
        config = json.loads(path.read_text())["config"]
        return config["data"], config.get("fit", "crop")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"cannot read the data spec from {path} ({type(e).__name__}: {e}); pass --real DATA") from None


def format_table(results: dict) -> str:
    """One row per metric: its name, value and what it means."""
    from ..metrics import described
    return "\n".join(f"{name:<26}{text:<14}  {meaning}" if len(text) <= 14 else f"{name:<26}{text}\n{'':<42}{meaning}"
                     for name, text, meaning in described(results))


@cli.command(name="eval", epilog="""\b
Examples:
  gansmith eval runs/shoes                       # 5,000 images; prints how long it will take first
  gansmith eval runs/shoes -n 1000 --metrics fid,kid,pr,nn   # quicker; also writes nearest.png""")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--real", "real_spec", default=None, help="real data to compare with  [default: the run's own data]")
@click.option("-n", "--n", "n", type=int, default=DEFAULT_EVAL_N,
              help=f"generated images, and at most this many real ones  [default: {DEFAULT_EVAL_N}]")
@click.option("--metrics", "metric_names", default="fid,kid,pr",
              help="comma-separated: fid, kid, pr (precision/recall), nn (nearest training images; "
                   "also writes RUN/nearest.png)  [default: fid,kid,pr]")
@click.option("--checkpoint", default="latest", help="latest, best or a checkpoint path  [default: latest]")
@click.option("--seed", type=seed_type(), default=0, help="seed of the generated images  [default: 0]")
@click.option("--batch", type=int, default=None, help=BATCH_HELP)
@click.option("--device", default="auto", help=DEVICE_HELP)
def eval_(run, real_spec, n, metric_names, checkpoint, seed, batch, device):
    """Measure a trained RUN against real data; prints a table and writes RUN/eval.json."""
    from .. import metrics
    from ..generate import generate_images, load_generator
    names = metrics.parse_metrics(metric_names)
    _check_options(n, batch)
    if not run.is_dir():
        raise UserError(f"{run} is not a run folder")
    spec, fit = (real_spec, "crop") if real_spec else _run_data_spec(run)
    device, batch = _device(device), batch or metrics.FEATURE_BATCH
    with warnings_as_lines():
        G, _ = load_generator(run, which=checkpoint, device=device)
        real = _load(spec, res=G.res, channels=G.channels, fit=fit)
        n_real = min(n, real.n)
        say_estimate(n + (0 if metrics.features_cached(real, n_real) else n_real), batch, device)
        fake = generate_images(G, n, seed=seed, device=device)
        results = metrics.evaluate(real, fake, names, n=n, batch=batch, progress=True, device=device,
                                   nearest_png=run / "nearest.png" if "nn" in names else None)
    click.echo(format_table(results))
    atomic_write_json(run / "eval.json", {
        "metrics": results, "n": n, "real": spec, "checkpoint": checkpoint, "seed": seed,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    click.echo(f"wrote {run / 'eval.json'}" + (f" and {run / 'nearest.png'}" if "nn" in names else ""))
