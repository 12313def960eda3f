"""`run_sweep`: short trials over a grid of options, ranked by KID, to find settings that converge.

    gansmith sweep DATA --grid "g_lr=1e-4,2e-4 d_lr=1e-4,4e-4 loss=ns,hinge" --minutes-each 3

Each trial is an ordinary run folder under OUT/; OUT/sweep.json records every finished trial, so an
interrupted sweep resumes without rerunning them; an unfinished trial starts over, so that every trial trains
for the same time. KID (not FID) ranks the trials because it is
unbiased at the small sample sizes a short trial can afford.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from pathlib import Path

from ..errors import UserError
from ..fileio import atomic_write_json
from .config import TrainConfig, flag
from .run import log


def parse_grid(text: str) -> dict[str, list]:
    """'g_lr=1e-4,2e-4 loss=ns,hinge' -> {'g_lr': [1e-4, 2e-4], 'loss': ['ns', 'hinge']}, typed per option."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    grid = {}
    for token in text.split():
        key, sep, values = token.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not values:
            raise UserError(f"--grid: {token!r} is not of the form option=value1,value2")
        if key not in fields or key in ("data", "out"):
            raise UserError(f"--grid: {key!r} is not a training option")
        grid[key] = [convert(key, v, fields[key].type) for v in values.split(",")]
    if not grid:
        raise UserError("--grid is empty; e.g. --grid \"g_lr=1e-4,2e-4 loss=ns,hinge\"")
    return grid


def convert(key: str, text: str, annotation: str):
    """A grid value typed by its TrainConfig field's annotation, e.g. 'int | None' -> int."""
    kind = annotation.split("|")[0].strip()
    try:
        if kind == "bool":
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        return {"int": int, "float": float}.get(kind, str)(text)
    except ValueError:
        raise UserError(f"--grid: {key}={text} is not a valid value") from None


def trials(grid: dict[str, list]) -> list[dict]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*grid.values())]


def changed_options(cfg: TrainConfig) -> dict:
    """The options of cfg that differ from the defaults (bookkeeping and paths left out)."""
    skip = {"data", "out", "kimg", "minutes"}
    default = TrainConfig().to_dict()
    return {k: v for k, v in cfg.to_dict().items() if k not in skip and v != default[k]}


def command_line(data: str, params: dict, out: str = "runs/best") -> str:
    flags = []
    for k, v in params.items():
        name = flag(k)
        flags.append(name if v is True else f"--no-{name[2:]}" if v is False else f"{name} {v}")
    return f"gansmith train {data} --out {out} " + " ".join(flags)


def run_sweep(data: str, out: str | Path, grid_text: str, minutes_each: float, base: TrainConfig | None = None,
              eval_n: int = 500, progress: bool = True) -> list[dict]:
    """Run (or resume) every trial of the grid; return the trials sorted by KID, best first."""
    from ..data import load_images
    from ..generate import load_generator
    from .evaluation import evaluate_generator
    from .loop import train

    if minutes_each <= 0:
        raise UserError(f"--minutes-each must be positive, not {minutes_each}")
    grid, out = parse_grid(grid_text), Path(out)
    base = base or TrainConfig()
    summary_file = out / "sweep.json"
    done = {json.dumps(t["params"], sort_keys=True): t for t in read_sweep(summary_file).get("trials", [])}
    real = load_images(data, res=base.res, channels=base.channels, fit=base.fit, progress=progress)
    results = []
    for i, params in enumerate(trials(grid)):
        key = json.dumps(params, sort_keys=True)
        if key in done:
            results.append(done[key])
            continue
        folder = out / f"trial-{i:03d}"
        log(f"trial {i + 1}: {params}")
        cfg = base.replace(**params, data=data, out=str(folder), minutes=minutes_each, kimg=None)
        if folder.exists():  # an unfinished trial starts again, so that every trial trains for the same time
            shutil.rmtree(folder)
        if train(cfg, progress=progress).interrupted:
            log(f"sweep stopped in trial {i + 1}; run the same command again to continue (finished trials are kept)")
            raise KeyboardInterrupt
        G, _ = load_generator(folder)
        scores = evaluate_generator(G, real, eval_n)
        results.append({"params": params, "run": str(folder), "kid": scores["kid"], "kid_std": scores["kid_std"],
                        "fid": scores["fid"], "command": command_line(data, {**changed_options(base), **params})})
        atomic_write_json(summary_file, {"data": data, "grid": grid, "minutes_each": minutes_each,
                                         "eval_n": eval_n, "trials": results})
    results.sort(key=lambda t: t["kid"])
    atomic_write_json(summary_file, {"data": data, "grid": grid, "minutes_each": minutes_each,
                                     "eval_n": eval_n, "trials": results})
    return results


def read_sweep(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
