"""`train(config)`: the training loop, from data to run folder.

Read top to bottom: `train` (ranks), `train_on_ranks` (data, the resolved config, resume, run folder), then
`run_loop` (steps, and at intervals of images shown: log, sample, evaluate, checkpoint). The step itself is the
`Trainer`'s (trainer.py). Ctrl-C or SIGTERM finish the current step, save a checkpoint and return.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from ..data import load_images
from ..doctor import sample_diversity
from ..errors import UserError
from ..images import float_to_uint8
from . import distributed
from .batches import Batches
from .checkpoint import (list_step_checkpoints, load_latest_valid, prune_checkpoints, remove_stale_temporaries,
                         save_checkpoint, step_path)
from .config import TrainConfig, resolve, shape_differences, validate
from .distributed import Dist
from .evaluation import evaluate_during_training
from .progress import Progress, budget_fraction, startup_summary
from .run import ReadOnlyRun, RunFolder, crossed, log
from .signals import GracefulStop
from .trainer import N_FIXED_SAMPLES, STAT_NAMES, Trainer

REPORT_MIN_SECONDS = 60  # the HTML report costs a second or two to draw: refresh it at most this often


@dataclass
class TrainResult:
    run: Path
    step: int
    images_seen: int
    checkpoint: Path | None  # None: stopped before anything was saved
    interrupted: bool


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    validate(config)
    ranks, device = distributed.setup(config.device)
    try:
        return train_on_ranks(config.replace(device=device), ranks, resume, progress and ranks.main)
    finally:
        distributed.shutdown(ranks)


def train_on_ranks(config: TrainConfig, ranks: Dist, resume: bool, progress: bool) -> TrainResult:
    """The whole run on this process (one of `ranks.world`); only rank 0 writes to the run folder, holding its
    lock from before it reads the run until it is done."""
    run = RunFolder(config.out) if ranks.main else ReadOnlyRun(config.out)
    with run.lock():
        try:
            trainer, batches, tb = start_run(config, ranks, run, resume, progress)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM under the CLI, before the first step
            run.close()
            if ranks.main:
                log("interrupted before training started: nothing was trained")
            saved = list_step_checkpoints(run.checkpoints)
            return TrainResult(run.path, 0, 0, saved[-1] if saved else None, interrupted=True)
        try:
            interrupted = run_loop(trainer, batches, run, tb, progress)
            checkpoint = save(trainer, run)
            run.save_sample_grid(float_to_uint8(trainer.fixed_samples()), trainer.step)
            save_pictures(trainer, run)
        finally:
            run.close()
        if trainer.cfg.report and ranks.main:
            refresh_report(run.path)
    if ranks.main:
        log(("interrupted: " if interrupted else "done: ")
            + f"{trainer.images_seen / 1000:.1f} kimg, checkpoint {checkpoint}")
    return TrainResult(run.path, trainer.step, trainer.images_seen, checkpoint, interrupted)


def start_run(config: TrainConfig, ranks: Dist, run: RunFolder, resume: bool, progress: bool):
    """Data, the resolved config, the trainer (resumed, or saved at step 0), config.json: ready for the first step."""
    latest = ranks.broadcast(find_resume_point(run, resume) if ranks.main else None)
    data = load_images(config.data, res=config.res, channels=config.channels, fit=config.fit, progress=progress)
    cfg = resolve(config, data.res, data.channels, world=ranks.world, n_images=data.n)
    if latest is not None:
        check_resumable(run, latest[1]["config"], cfg, data)

    trainer = Trainer(cfg, ranks)
    run.create()
    if latest is not None:
        trainer.load_state_dict(latest[1])
        run.truncate_metrics(trainer.step)
        if ranks.main:
            log(f"resuming {run.path} from {latest[0].name} (step {trainer.step}, "
                f"{trainer.images_seen / 1000:.1f} kimg)")
    else:
        save(trainer, run)  # step 0: a point to roll back to if the very first steps diverge
    native = {"native": list(data.native)} if data.native else {}  # what check_resumable compares with
    run.write_config({**cfg.to_dict(), "ranks": ranks.world}, {**data.summary(), **native}, resumed=latest is not None)
    run.write_adjustments(trainer.adjustments.state_dict())
    batches = Batches(data, cfg.batch, cfg.seed, trainer.device, ranks.rank, ranks.world)
    trainer.doctor.set_real_diversity(sample_diversity(batches.get_fixed(N_FIXED_SAMPLES)))
    return trainer, batches, run.tensorboard(purge_step=trainer.step if latest else None)


def check_resumable(run: RunFolder, saved: dict, cfg: TrainConfig, data) -> None:
    """Refuse to resume with networks of another shape, or on images of another size or colour than the run's
    (they would be converted to the run's silently)."""
    differing = shape_differences(saved, cfg.to_dict())
    if differing:
        raise UserError(f"cannot resume {run.path}: the model shape differs from the run's ({'; '.join(differing)})")
    trained_on = ((run.read_config() or {}).get("data") or {}).get("native")
    if trained_on and data.native and tuple(trained_on) != tuple(data.native):
        raise UserError(f"cannot resume {run.path} on {data.source}: the run was trained on "
                        f"{describe_images(*trained_on)} images, {data.source} holds {describe_images(*data.native)} ones")


def describe_images(res: int, channels: int) -> str:
    return f"{res} px {'grayscale' if channels == 1 else 'colour'}"


def refresh_report(path: Path) -> None:
    from ..report import refresh_report as refresh  # the report's plotting is slow to import: only when drawing
    refresh(path)


def find_resume_point(run: RunFolder, resume: bool):
    if not resume:
        if list_step_checkpoints(run.checkpoints):
            raise UserError(f"{run.path} already holds a run: pass --resume to continue it, or choose another --out")
        return None
    remove_stale_temporaries(run.checkpoints)
    latest = load_latest_valid(run.checkpoints, like=run.saved_config())
    if latest is None:
        raise UserError(f"nothing to resume in {run.path}: it has no usable checkpoint")
    return latest


def run_loop(t: Trainer, batches: Batches, run: RunFolder, tb, progress: bool) -> bool:
    """Train until the duration is reached or a stop signal arrives; return True if interrupted. The last,
    partial interval is logged too, so even a short run leaves metrics for the doctor and the report."""
    cfg = t.cfg
    target = int(cfg.kimg * 1000) if cfg.kimg is not None else None
    if t.ranks.main:
        for line in startup_summary(cfg, batches.data, run.path, t.images_seen):
            log(line)
    console = Progress(cfg, t.images_seen, progress)
    start = time.monotonic()  # the --minutes budget counts from here, on the loop's clock
    sums, n_sums = torch.zeros(len(STAT_NAMES), device=t.device), 0
    interval_start, interval_images = start, 0
    last_report = start
    pending_eval: dict = {}
    rollback_to = lambda: t.ranks.broadcast(load_latest_valid(run.checkpoints) if t.ranks.main else None)  # noqa: E731
    interrupted = False

    def log_interval():
        nonlocal pending_eval, n_sums, interval_start, interval_images
        now = time.monotonic()
        record = log_record(t, sums / n_sums, interval_images / max(now - interval_start, 1e-9), pending_eval)
        pending_eval = {}
        write_record(t, run, tb, record)
        console.interval(record, t.images_seen)
        sums.zero_()
        n_sums, interval_start, interval_images = 0, now, 0

    with GracefulStop() as stop:
        try:
            while True:
                if target is not None and t.images_seen >= target:
                    break
                time_up = cfg.minutes is not None and time.monotonic() - start >= cfg.minutes * 60
                if t.ranks.any(stop.requested or time_up, t.device):  # all ranks stop at the same step
                    interrupted = t.ranks.any(stop.requested, t.device)
                    break
                tick, before = time.monotonic(), t.images_seen
                t.progress = budget_fraction(cfg, t.images_seen, tick - start)
                stats = t.train_step(batches)
                t.observe(dict(zip(STAT_NAMES, stats.tolist())), rollback_to)
                if t.images_seen <= before:  # rolled back: start the interval afresh
                    run.truncate_metrics(t.step)  # the steps after the checkpoint will be logged again
                    run.write_adjustments(t.adjustments.state_dict())
                    sums.zero_()
                    n_sums, interval_start, interval_images = 0, time.monotonic(), 0
                    console.update(t.images_seen)
                    continue
                t.seconds += time.monotonic() - tick
                sums += stats
                n_sums += 1
                interval_images += t.images_seen - before
                console.update(t.images_seen)

                if cfg.eval_every and crossed(before, t.images_seen, cfg.eval_every) and t.ranks.main:
                    pending_eval = evaluate_during_training(t, batches.data, run)
                if crossed(before, t.images_seen, cfg.log_every):
                    log_interval()
                if crossed(before, t.images_seen, cfg.sample_every):
                    images = float_to_uint8(t.fixed_samples())
                    run.save_sample_grid(images, t.step)
                    save_pictures(t, run)
                    tb.add_images("samples", images[:16], t.step, dataformats="NHWC")
                    if cfg.report and t.ranks.main and time.monotonic() - last_report >= REPORT_MIN_SECONDS:
                        refresh_report(run.path)
                        last_report = time.monotonic()
                if crossed(before, t.images_seen, cfg.checkpoint_every):
                    save(t, run)
            if n_sums:
                log_interval()
        finally:
            console.close()
    return interrupted


def log_record(t: Trainer, means: torch.Tensor, img_per_s: float, evaluation: dict) -> dict:
    """One line of metrics.jsonl: the interval's mean numbers, diversity, and what the policies and doctor did.
    With --auto-fix the doctor's remedies are applied here, as adjustments."""
    record = {"step": t.step, "kimg": round(t.images_seen / 1000, 3), "seconds": round(t.seconds, 2)}
    record.update({k: float(v) for k, v in zip(STAT_NAMES, means.tolist())})
    record.update({"lr_g": t.opt_G.param_groups[0]["lr"], "lr_d": t.opt_D.param_groups[0]["lr"],
                   "img_per_s": round(img_per_s, 1)})
    record.update(t.growth)
    record.update(t.doctor.measure(t.fixed_samples()))
    if t.balance:
        record["balance"] = t.balance.take_interval_counts()
    record.update(evaluation)
    findings = t.ranks.broadcast(t.doctor.examine(record, augmenting=bool(t.augment)))  # rank 0 decides for all
    if t.cfg.auto_fix:
        for f in findings:
            if f.get("fix"):
                t.adjust(f["fix"], f"doctor: {f['kind']}")
                f["applied"] = True
    events = t.events + findings
    t.events = []
    if events:
        record["events"] = events
    return record


def write_record(t: Trainer, run: RunFolder, tb, record: dict) -> None:
    """The record to metrics.jsonl and TensorBoard, its events to the console, the adjustments beside config.json."""
    run.append_metrics(record)
    for k, v in record.items():
        if isinstance(v, (int, float)) and k not in ("step", "kimg"):
            tb.add_scalar(k, v, t.step)
    for e in record.get("events", []) if t.ranks.main else []:
        log(f"[{e['severity']}] {e['message']}" + (f" -> {e['remedy']}" if e.get("remedy") else ""))
    if any(e.get("applied") for e in record.get("events", [])):
        run.write_adjustments(t.adjustments.state_dict())


def save_pictures(t: Trainer, run: RunFolder) -> None:
    if t.arch.pictures is not None and t.ranks.main:
        run.save_pictures(t.arch.pictures(t.evaluation_generator().eval()))


def save(t: Trainer, run: RunFolder) -> Path:
    path = step_path(run.checkpoints, t.step)
    if t.ranks.main:
        save_checkpoint(path, t.state_dict())
        prune_checkpoints(run.checkpoints, t.cfg.keep)
    return path
