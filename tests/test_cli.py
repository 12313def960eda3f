"""The CLI as a user meets it: train, resume, sample, and one clear line for every mistake."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from gansmith.training.checkpoint import list_step_checkpoints, load_checkpoint, save_checkpoint

from conftest import assert_one_line_error, tiny_flags

# depth 0 (conftest.TINY): after the 8 steps of these runs, a depth-1 G in eval mode (batch-norm running statistics
# still near their initial values) draws near-uniform gray for every seed, which the sampling tests could not tell apart
TINY = tiny_flags()


def test_train_then_resume_extends_the_run(trained_run, tiny_npz, run_cli):
    # Options not given on --resume come from the run's config (here the tiny width), kimg is extended.
    code, out, err = run_cli("train", tiny_npz, "--out", trained_run, "--resume", "--kimg", "0.256", "--quiet")
    assert code == 0, err
    assert "resuming" in err
    assert list_step_checkpoints(trained_run / "checkpoints")[-1].name == "step-00000016.pt"


def test_a_run_saved_before_depth_existed_resumes_and_samples_as_it_was_built(tiny_npz, tmp_path, run_cli):
    """Runs of older versions have no "depth" in their config; they were built without extra layers, so they
    must resume and sample at depth 0 although the default for new runs is now 1."""
    run = tmp_path / "old"
    assert run_cli("train", tiny_npz, "--out", run, "--kimg", "0.128", "--quiet", *TINY)[0] == 0  # depth 0
    drop_config_key(run, "depth")
    code, out, err = run_cli("train", tiny_npz, "--out", run, "--resume", "--kimg", "0.256", "--quiet")
    assert code == 0, err
    latest = list_step_checkpoints(run / "checkpoints")[-1]
    assert latest.name == "step-00000016.pt" and load_checkpoint(latest)["config"]["depth"] == 0
    drop_config_key(run, "depth")
    assert run_cli("sample", run, "-n", "4", "-o", tmp_path / "old.png")[0] == 0


def drop_config_key(run, key):
    """Rewrite a run's config.json and checkpoints as a version without `key` would have written them."""
    path = run / "config.json"
    saved = json.loads(path.read_text())
    saved["config"].pop(key, None)
    path.write_text(json.dumps(saved))
    for ckpt_path in list_step_checkpoints(run / "checkpoints"):
        ckpt = load_checkpoint(ckpt_path)
        ckpt["config"].pop(key, None)
        save_checkpoint(ckpt_path, {k: v for k, v in ckpt.items() if k not in ("format", "version", "checksum")})


def test_sample_grid_and_single_images_by_seed(trained_run, tmp_path, run_cli):
    code, out, err = run_cli("sample", trained_run, "-n", "9", "-o", tmp_path / "a.png", "--seed", "5")
    assert code == 0, err
    grid = np.asarray(Image.open(tmp_path / "a.png"))
    assert grid.shape == (3 * 30 + 2, 3 * 30 + 2)  # 3x3 grid of 28 px images with 2 px padding
    run_cli("sample", trained_run, "-n", "9", "-o", tmp_path / "b.png", "--seed", "5")
    run_cli("sample", trained_run, "-n", "9", "-o", tmp_path / "c.png", "--seed", "6")
    b, c = (np.asarray(Image.open(tmp_path / f)) for f in ("b.png", "c.png"))
    assert np.array_equal(grid, b) and not np.array_equal(grid, c)

    code, out, err = run_cli("sample", trained_run, "-n", "3", "--outdir", tmp_path / "singles", "--seed", "5")
    assert code == 0, err
    files = sorted((tmp_path / "singles").glob("*.png"))
    assert len(files) == 3 and np.asarray(Image.open(files[0])).shape == (28, 28)
    assert np.array_equal(np.asarray(Image.open(files[0])), grid[2:30, 2:30])  # same seed, same first image


def test_sample_needs_only_a_checkpoint_file(trained_run, tmp_path, run_cli):
    ckpt = list_step_checkpoints(trained_run / "checkpoints")[-1]
    lone = tmp_path / "lone.pt"
    lone.write_bytes(ckpt.read_bytes())
    code, out, err = run_cli("sample", lone, "-n", "4", "-o", tmp_path / "g.png")
    assert code == 0, err
    assert (tmp_path / "g.png").exists()


@pytest.mark.parametrize("args, fragments", [
    (["train", "/no/such/folder", "--out", "{tmp}/r"], ["/no/such/folder"]),
    (["train", "{npz}", "--out", "{tmp}/r", "--res", "48"], ["--res 48", "28, 32, 64, 128, 256"]),
    (["train", "{npz}", "--out", "{tmp}/r", "--g-lr", "-1"], ["--g-lr"]),
    (["train", "{npz}", "--out", "{tmp}/r", "--batch", "0"], ["--batch"]),
    (["train", "{npz}", "--out", "{tmp}/r", "--kimg", "0"], ["--kimg"]),
    (["train", "{npz}", "--out", "{tmp}/r", "--resume"], ["nothing to resume"]),
    (["sample", "{tmp}/nothing", "-o", "{tmp}/x.png"], ["neither a run folder nor a checkpoint"]),
])
def test_user_mistakes_give_one_line_and_exit_2(args, fragments, tiny_npz, tmp_path, run_cli):
    args = [a.format(tmp=tmp_path, npz=tiny_npz) for a in args]
    assert_one_line_error(*run_cli(*args)[::2], *fragments)


def test_empty_folder_is_refused(tmp_path, run_cli):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(*run_cli("train", tmp_path / "empty", "--out", tmp_path / "r")[::2])


def test_existing_run_needs_resume(trained_run, tiny_npz, run_cli):
    assert_one_line_error(*run_cli("train", tiny_npz, "--out", trained_run, *TINY)[::2], "--resume")


def test_resume_with_a_different_model_shape_names_the_keys(trained_run, tiny_npz, run_cli):
    code, _, err = run_cli("train", tiny_npz, "--out", trained_run, "--resume", "--width", "16", "--z-dim", "8")
    assert_one_line_error(code, err, "trained with --z-dim 16, --width 8, not --z-dim 8, --width 16")


def test_resume_with_another_arch_says_what_the_run_was_trained_with(trained_run, tiny_npz, run_cli):
    """Not "--arch msg does not use --depth": the run's saved options are not the user's to drop."""
    code, _, err = run_cli("train", tiny_npz, "--out", trained_run, "--resume", "--arch", "msg")
    assert_one_line_error(code, err, "trained with --arch dcgan, not --arch msg")
    assert "does not use" not in err


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_checkpoint_with_a_pickle_payload_is_refused_and_never_runs(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "gansmith-checkpoint", "G": Payload()}, evil)
    assert_one_line_error(*run_cli("sample", evil, "-o", "x.png")[::2], "refusing")
    assert not (tmp_path / "PWNED").exists()


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(trained_run, tmp_path, run_cli):
    ckpts = list_step_checkpoints(trained_run / "checkpoints")
    data = bytearray(ckpts[-1].read_bytes())
    data[len(data) // 2] ^= 0xFF
    ckpts[-1].write_bytes(bytes(data))
    code, out, err = run_cli("sample", trained_run, "-n", "4", "-o", tmp_path / "g.png")
    assert code == 0, err
    assert "warning:" in err and ckpts[-1].name in err and "previous" in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_signals_save_a_checkpoint_and_exit_130(sig, tiny_npz, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "gansmith", "train", str(tiny_npz), "--out", str(run),
                             "--kimg", "1000", "--checkpoint-every", "1000", "--quiet", *TINY[:-2]],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    assert list_step_checkpoints(run / "checkpoints"), "no checkpoint was saved on Ctrl-C"
