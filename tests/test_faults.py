"""Nothing is lost: kill -9 at random moments (also mid-checkpoint-write, also while a second writer is refused by
the run's lock), failing writes, bad option values.

The quick version runs in CI; `pytest --long tests/test_faults.py` runs 20+ kill trials and 10 lock trials
(results: benchmarks/results/faults.md).
"""
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from gansmith.errors import UserError
from gansmith.training.checkpoint import list_step_checkpoints, load_checkpoint, save_checkpoint
from conftest import tiny_flags

CHECKPOINT_KIMG = 0.064
ARGS = tiny_flags(log_every=0.016, sample_every=1, checkpoint_every=CHECKPOINT_KIMG, keep=3) + ["--quiet"]


def start_training(data, run, *extra):
    return subprocess.Popen([sys.executable, "-m", "gansmith", "train", str(data), "--out", str(run),
                             "--kimg", "1000", *ARGS, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(predicate, timeout=120.0, poll=0.002):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


def last_logged_kimg(run):
    lines = [l for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()] if (run / "metrics.jsonl").exists() else []
    kimgs = []
    for l in lines:
        try:
            kimgs.append(json.loads(l)["kimg"])
        except ValueError:
            pass  # the line being written when the process died
    return max(kimgs, default=0.0)


def kill_trial(data, run, rng, mid_write: bool):
    proc = start_training(data, run)
    ckpts = run / "checkpoints"
    assert wait_for(lambda: len(list_step_checkpoints(ckpts)) >= 2), proc.stderr.read().decode()[-2000:]
    if mid_write:  # kill while a checkpoint's temporary file exists
        wait_for(lambda: any(ckpts.glob(".*.tmp")), timeout=30, poll=0.0005)
    else:
        time.sleep(rng.uniform(0, 3))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    logged = last_logged_kimg(run)

    # every checkpoint file in place is complete and verifies
    for path in list_step_checkpoints(ckpts):
        load_checkpoint(path)
    latest = load_checkpoint(list_step_checkpoints(ckpts)[-1])
    lost = logged - latest["images_seen"] / 1000
    assert lost <= CHECKPOINT_KIMG + 0.016 + 1e-9, f"lost {lost} kimg, more than one checkpoint interval"

    resumed = resume(data, run, latest["images_seen"] / 1000 + 0.032)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stderr and "Traceback" not in resumed.stderr
    assert not any(ckpts.glob(".*.tmp")), "a killed write's temporary file was left behind"
    return {"killed_at_kimg": logged, "resumed_from_kimg": latest["images_seen"] / 1000, "mid_write": mid_write}


def test_kill_9_at_random_moments_never_loses_more_than_one_interval(tiny_npz, tmp_path, long_run):
    trials = 20 if long_run else 2
    rng = random.Random(0)
    results = [kill_trial(tiny_npz, tmp_path / f"run{i}", rng, mid_write=i % 2 == 1) for i in range(trials)]
    assert len(results) == trials
    if long_run:
        (tmp_path.parent / "kill9-results.json").write_text(json.dumps(results, indent=1))
        print(json.dumps({"trials": trials, "failures": 0, "mid_write": sum(r["mid_write"] for r in results)}))


def resume(data, run, kimg):
    return subprocess.run([sys.executable, "-m", "gansmith", "train", str(data), "--out", str(run), "--resume",
                           "--kimg", str(kimg), "--quiet"], capture_output=True, text=True, timeout=300)


def lock_trial(data, run, rng):
    """A training holds the run's lock: a second writer is refused naming it; kill -9 the holder at a random moment,
    then --resume at once: the OS released the lock with the process, so nothing stale blocks it."""
    proc = start_training(data, run)
    ckpts = run / "checkpoints"
    assert wait_for(lambda: len(list_step_checkpoints(ckpts)) >= 1), proc.stderr.read().decode()[-2000:]
    second = resume(data, run, 1000)
    refused = second.returncode == 2 and f"pid {proc.pid}" in second.stderr and "Traceback" not in second.stderr
    assert refused, second.stderr[-2000:]
    time.sleep(rng.uniform(0, 1))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = time.time()
    latest = load_checkpoint(list_step_checkpoints(ckpts)[-1])
    resumed = resume(data, run, latest["images_seen"] / 1000 + 0.032)
    assert resumed.returncode == 0 and "resuming" in resumed.stderr, resumed.stderr[-2000:]
    return {"second_writer_refused": refused, "resumed_from_kimg": latest["images_seen"] / 1000,
            "resume_done_after_s": round(time.time() - killed, 1)}


def test_kill_9_while_holding_the_lock_never_blocks_the_resume(tiny_npz, tmp_path, long_run):
    trials = 10 if long_run else 1
    rng = random.Random(1)
    results = [lock_trial(tiny_npz, tmp_path / f"run{i}", rng) for i in range(trials)]
    if long_run:
        (tmp_path.parent / "lock-results.json").write_text(json.dumps(results, indent=1))
        print(json.dumps({"trials": trials, "failures": 0}))


def test_a_failing_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt" / "step-00000001.pt"
    save_checkpoint(path, {"x": 1})
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(UserError, match="No space left on device"):
        save_checkpoint(path, {"x": 2})
    assert path.read_bytes() == before and load_checkpoint(path)["x"] == 1
    assert not list((tmp_path / "ckpt").glob(".*.tmp"))


def test_disk_full_during_training_is_one_line_and_the_run_survives(tiny_npz, tmp_path, run_cli, monkeypatch):
    run = tmp_path / "run"
    assert run_cli("train", tiny_npz, "--out", run, "--kimg", "0.064", *ARGS)[0] == 0
    good = list_step_checkpoints(run / "checkpoints")[-1]

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    code, out, err = run_cli("train", tiny_npz, "--out", run, "--resume", "--kimg", "0.256", *ARGS)
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: cannot write")
    assert "No space left on device" in err and "Traceback" not in err
    load_checkpoint(good)


@pytest.mark.parametrize("option, value", [
    ("--res", "0"), ("--res", "100"), ("--channels", "2"), ("--z-dim", "0"), ("--width", "-8"), ("--d-width", "0"), ("--batch", "0"),
    ("--g-lr", "-0.1"), ("--d-lr", "0"), ("--d-lr", "2"), ("--beta1", "1"), ("--beta2", "-0.5"), ("--ema", "1.5"),
    ("--kimg", "-1"), ("--minutes", "0"), ("--log-every", "0"), ("--sample-every", "-1"),
    ("--checkpoint-every", "0"), ("--keep", "0"), ("--seed", "-1"), ("--r1", "-1"), ("--r1-every", "0"),
    ("--gp-weight", "-1"), ("--label-smooth", "0.7"), ("--instance-noise", "-0.1"), ("--d-steps", "0"),
    ("--eval-every", "0"), ("--eval-n", "1"), ("--augment", "rotate"), ("--device", "tpu"), ("--batch", "many"),
])
def test_every_numeric_option_is_validated(option, value, tiny_npz, tmp_path, run_cli):
    code, out, err = run_cli("train", tiny_npz, "--out", tmp_path / "r", option, value)
    assert code == 2, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err and option.lstrip("-").split("-")[0] in err
    assert not (tmp_path / "r").exists(), "a rejected option must not create the run folder"
