"""What a hostile user tried (#30): two writers of one run, unusable --out, values that pass a check and crash later,
huge sample counts, checkpoints that verify but lie, stop signals while starting, misleading messages, one image
opening policy."""
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections import namedtuple

import numpy as np
import pytest
import torch
from PIL import Image

from gansmith.data import open_image
from gansmith.errors import UserError
from gansmith.generate import latent_batches, latents
from gansmith.training.checkpoint import list_step_checkpoints, load_checkpoint, save_checkpoint, step_path
from gansmith.training.run import RunFolder

from conftest import assert_one_line_error, tiny_flags

TINY = tiny_flags()


# --- 1. one writer per run folder ------------------------------------------------------------------------------

def test_a_second_writer_is_refused_naming_the_holder_and_readers_still_work(trained_run, tiny_npz, tmp_path,
                                                                             run_cli):
    before = {p.name: p.read_bytes() for p in list_step_checkpoints(trained_run / "checkpoints")}
    metrics = (trained_run / "metrics.jsonl").read_text()
    with RunFolder(trained_run).lock():  # as a training in progress holds it
        holder = json.loads((trained_run / ".lock").read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        for extra in (["--resume", "--kimg", "0.256"], ["--seed", "2"]):
            code, _, err = run_cli("train", tiny_npz, "--out", trained_run, "--quiet", *extra)
            assert_one_line_error(code, err, "being trained by another process", f"pid {os.getpid()}",
                           socket.gethostname(), holder["started"])
        # readers never take the lock
        assert run_cli("sample", trained_run, "-n", "4", "-o", tmp_path / "g.png")[0] == 0
        assert run_cli("doctor", trained_run)[0] == 0
        assert run_cli("report", trained_run)[0] == 0
    # nothing of the run was touched by the refused writers
    assert {p.name: p.read_bytes() for p in list_step_checkpoints(trained_run / "checkpoints")} == before
    assert (trained_run / "metrics.jsonl").read_text() == metrics
    code, _, err = run_cli("train", tiny_npz, "--out", trained_run, "--resume", "--kimg", "0.256", "--quiet")
    assert code == 0 and "resuming" in err, err  # released at the end of the block


def test_a_killed_holder_leaves_no_lock_behind(tiny_npz, tmp_path, run_cli):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom gansmith.training.run import RunFolder\n"
                               "with RunFolder(sys.argv[1]).lock():\n    print('locked', flush=True)\n"
                               "    time.sleep(600)", str(run)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    code, _, err = run_cli("train", tiny_npz, "--out", run, "--quiet", *TINY)
    assert_one_line_error(code, err, f"pid {holder.pid}")
    holder.kill()
    holder.wait()
    code, _, err = run_cli("train", tiny_npz, "--out", run, "--kimg", "0.032", "--quiet", *TINY)
    assert code == 0, err


# --- 2. unusable --out ------------------------------------------------------------------------------------------

def unusable_outs(tmp_path):
    (tmp_path / "a_file").write_text("x")
    outs = {"an existing file": (tmp_path / "a_file", "it is a file"),
            "a path under a file": (tmp_path / "a_file" / "run", "a part of that path is a file"),
            "/proc": ("/proc/gansmith-run", "cannot write"), "/sys": ("/sys/gansmith-run", "cannot write"),
            "empty": ("", "--out must name a folder")}
    immutable = tmp_path / "immutable"
    immutable.mkdir()
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", immutable], capture_output=True).returncode == 0:
        outs["an immutable folder"] = (immutable / "run", "cannot write")
    return outs


def test_an_unusable_out_is_one_line_and_exit_2(tiny_npz, tmp_path, run_cli):
    outs = unusable_outs(tmp_path)
    try:
        for what, (out, fragment) in outs.items():
            code, _, err = run_cli("train", tiny_npz, "--out", out, "--kimg", "0.016", "--quiet", *TINY)
            assert "Traceback" not in err, what
            assert_one_line_error(code, err, fragment)
    finally:
        subprocess.run(["chattr", "-i", tmp_path / "immutable"], capture_output=True)
    assert not list(tmp_path.glob("*.pt")) and not (tmp_path / "checkpoints").exists()


def test_a_run_that_fails_before_training_leaves_no_folder(tmp_path, run_cli):
    code, _, err = run_cli("train", tmp_path / "no-such-data", "--out", tmp_path / "r", *TINY)
    assert_one_line_error(code, err, "no-such-data")
    assert not (tmp_path / "r").exists()


def test_an_output_never_replaces_a_device_or_pipe(trained_run, tmp_path, run_cli):
    """Writes rename a temporary file over the target: over /dev/null (as root) that would replace the device."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    assert_one_line_error(*run_cli("sample", trained_run, "-n", "4", "-o", pipe)[::2], "not a regular file")
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)


# --- 3. values that pass one check and crash later -------------------------------------------------------------

@pytest.mark.parametrize("args, fragment", [
    (["train", "{npz}", "--out", "{tmp}/r", "--kimg", "inf"], "--kimg"),
    (["train", "{npz}", "--out", "{tmp}/r", "--kimg", "nan"], "--kimg"),
    (["train", "{npz}", "--out", "{tmp}/r", "--minutes", "1e400"], "--minutes"),
    (["train", "{npz}", "--out", "{tmp}/r", "--seed", "99999999999999999999999"], "--seed"),
    (["train", "{npz}", "--out", "{tmp}/r", "--r1", "inf"], "--r1"),
    (["train", "{npz}", "--out", "{tmp}/r", "--instance-noise", "inf"], "--instance-noise"),
    (["sample", "{run}", "-o", "{tmp}/g.png", "--seed", "-1"], "--seed"),
    (["sample", "{run}", "-o", "{tmp}/g.png", "--seed", "99999999999999999999999"], "--seed"),
    (["sample", "{run}", "-o", "{tmp}/g.png", "-n", "0"], "-n"),
    (["eval", "{run}", "--seed", "-1"], "--seed"),
    (["interpolate", "{run}", "-o", "{tmp}/w.gif", "--fps", "nan"], "--fps"),
    (["interpolate", "{run}", "-o", "{tmp}/w.gif", "--fps", "inf"], "--fps"),
    (["interpolate", "{run}", "-o", "{tmp}/w.gif", "--seeds", "1,99999999999999999999999"], "--seeds"),
    (["interpolate", "{run}", "-o", "{tmp}/w.gif", "--frames", "0"], "--frames"),
    (["demo", "--out", "{tmp}/d", "--minutes", "inf"], "--minutes"),
    (["sweep", "{npz}", "--grid", "g_lr=1e-4", "--out", "{tmp}/s", "--minutes-each", "nan"], "--minutes-each"),
])
def test_numeric_options_of_every_command_are_checked_up_front(args, fragment, trained_run, tiny_npz, tmp_path,
                                                               run_cli):
    args = [a.format(tmp=tmp_path, npz=tiny_npz, run=trained_run) for a in args]
    code, _, err = run_cli(*args)
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "r").exists() and not (tmp_path / "g.png").exists() and not (tmp_path / "w.gif").exists()


# --- 4. any number of samples ----------------------------------------------------------------------------------

def test_latents_drawn_in_batches_are_the_single_draw():
    for z_dim in (1, 3, 7, 16, 100, 128):
        for n in (1, 2, 15, 16, 17, 64, 65, 66, 79, 80, 130, 1000):
            for batch in (1, 10, 64):
                parts = list(latent_batches(n, z_dim, seed=3, batch=batch))
                assert torch.equal(torch.cat(parts), latents(n, z_dim, 3)), (z_dim, n, batch)
                assert max(len(p) for p in parts) <= max(64, batch + 16)


def test_sample_writes_many_images_a_batch_at_a_time(trained_run, tmp_path, run_cli):
    code, _, err = run_cli("sample", trained_run, "--n", "150", "--outdir", tmp_path / "many", "--seed", "4",
                           "-o", tmp_path / "grid.png", "--device", "cpu")
    assert code == 0, err
    files = sorted((tmp_path / "many").glob("*.png"))
    assert len(files) == 150
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    # image 143 (in the third batch of 64) sits in row 11, column 0 of the 13-wide grid
    assert np.array_equal(np.asarray(Image.open(files[143])), grid[2 + 11 * 30:2 + 11 * 30 + 28, 2:30])


def test_sample_refuses_what_cannot_fit_before_writing(trained_run, tmp_path, run_cli, monkeypatch):
    code, _, err = run_cli("sample", trained_run, "-n", "100000000", "-o", tmp_path / "huge.png")
    assert_one_line_error(code, err, "a grid of 100000000 images", "--outdir")
    code, _, err = run_cli("sample", trained_run, "-n", "4", "--upscale", "100000", "--outdir", tmp_path / "up")
    assert_one_line_error(code, err, "--upscale")
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 50_000, 50_000))
    code, _, err = run_cli("sample", trained_run, "-n", "1000", "--outdir", tmp_path / "full", "--quiet")
    assert_one_line_error(code, err, "free", "-n")
    assert not list((tmp_path / "full").glob("*.png")) if (tmp_path / "full").exists() else True
    assert not (tmp_path / "huge.png").exists() and not (tmp_path / "up").exists()


def test_sample_checks_the_run_before_the_outputs(tmp_path, run_cli):
    assert_one_line_error(*run_cli("sample", tmp_path / "nothing")[::2], "neither a run folder nor a checkpoint")


# --- 5. checkpoints that verify but are not usable -------------------------------------------------------------

def rewrite(path, ckpt, **changes):
    payload = {k: v for k, v in ckpt.items() if k not in ("format", "version", "checksum")}
    save_checkpoint(path, {**payload, **changes})  # a valid checksum over the odd contents


def odd_configs(ckpt):
    cfg = ckpt["config"]
    return {"no config": {"config": None}, "a string": {"config": "dcgan"}, "res 17": {"config": {**cfg, "res": 17}},
            "width 1000000": {"config": {**cfg, "width": 1000000}}, "a float width": {"config": {**cfg, "width": 8.5}},
            "weights of another shape": {"G": {**ckpt["G"], next(iter(ckpt["G"])): torch.zeros(3)}},
            "no G": {"G": None}}


def test_a_verified_but_unusable_newest_checkpoint_is_skipped_by_sample_and_resume(trained_run, tiny_npz, tmp_path,
                                                                                   run_cli):
    ckpts = list_step_checkpoints(trained_run / "checkpoints")
    good = load_checkpoint(ckpts[-1])
    odd_path = step_path(trained_run / "checkpoints", good["step"] + 1000)
    for what, changes in odd_configs(good).items():
        rewrite(odd_path, good, **changes)
        code, _, err = run_cli("sample", trained_run, "-n", "4", "-o", tmp_path / "g.png")
        assert code == 0 and "Traceback" not in err, (what, err)
        assert f"warning: checkpoint {odd_path}" in err and "not usable" in err and "previous" in err, (what, err)
        code, _, err = run_cli("sample", odd_path, "-n", "4", "-o", tmp_path / "g.png")
        assert_one_line_error(code, err, "not usable")
    code, _, err = run_cli("train", tiny_npz, "--out", trained_run, "--resume", "--kimg", "0.256", "--quiet")
    assert code == 0 and f"from {ckpts[-1].name}" in err, err


def test_a_checkpoint_of_another_run_shape_is_skipped(trained_run, tiny_npz, tmp_path, run_cli):
    other = tmp_path / "other"
    assert run_cli("train", tiny_npz, "--out", other, "--kimg", "0.032", "--quiet", *tiny_flags(width=16))[0] == 0
    foreign = load_checkpoint(list_step_checkpoints(other / "checkpoints")[-1])
    newest = step_path(trained_run / "checkpoints", 10**6)
    rewrite(newest, foreign)
    code, _, err = run_cli("sample", trained_run, "-n", "4", "-o", tmp_path / "g.png")
    assert code == 0 and "another model than its run" in err and "width: 8 != 16" in err, err
    code, _, err = run_cli("train", tiny_npz, "--out", trained_run, "--resume", "--kimg", "0.256", "--quiet")
    assert code == 0 and "another model than its run" in err and "step-00000008.pt" in err, err


@pytest.mark.parametrize("arch, res, channels", [("dcgan", 28, 1), ("progressive", 64, 3), ("msg", 32, 3)])
def test_the_memory_bound_of_a_checkpoint_never_underestimates(arch, res, channels):
    from gansmith.models import build_discriminator, build_generator
    from gansmith.training.checkpoint import network_bytes
    from gansmith.training.config import TrainConfig, resolve
    cfg = resolve(TrainConfig(arch=arch, width=40, d_width=24), res, channels)
    real = 4 * sum(p.numel() for net in (build_generator(cfg), build_discriminator(cfg)) for p in net.parameters())
    assert real <= network_bytes(cfg) <= 4 * real


def test_a_checkpoint_whose_networks_exceed_memory_is_refused(trained_run, tmp_path, run_cli, monkeypatch):
    import gansmith.training.checkpoint as checkpoint
    monkeypatch.setattr(checkpoint, "available_memory", lambda: 1000)
    newest = list_step_checkpoints(trained_run / "checkpoints")[-1]
    code, _, err = run_cli("sample", newest, "-n", "4", "-o", tmp_path / "g.png")
    assert_one_line_error(code, err, "GiB of memory")


# --- 6. stop signals while starting up --------------------------------------------------------------------------

@pytest.mark.parametrize("delay", [1.5, 3.0])
def test_sigterm_while_starting_exits_130_saying_nothing_was_trained(delay, tiny_npz, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "gansmith", "train", tiny_npz, "--out", run, "--kimg", "1000",
                             "--quiet", *TINY], stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and ("interrupted" in err or "stopped" in err), err
    if not list_step_checkpoints(run / "checkpoints"):
        assert "nothing" in err or err.strip() == "interrupted", err


# --- 7. messages that say what is wrong -------------------------------------------------------------------------

def test_a_file_that_is_no_checkpoint_is_called_that(tmp_path, run_cli):
    text = tmp_path / "text.jpg"
    text.write_text("not a picture, not a checkpoint")
    code, _, err = run_cli("sample", text, "-o", tmp_path / "g.png")
    assert_one_line_error(code, err, "not a gansmith checkpoint")
    assert "Python objects" not in err


def test_resuming_on_images_of_another_size_or_colour_is_refused(tmp_path, tiny_npz, run_cli):
    colour = tmp_path / "colour.npz"
    np.savez(colour, x=np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3), dtype=np.uint8))
    run = tmp_path / "run"
    assert run_cli("train", colour, "--out", run, "--kimg", "0.032", "--quiet", *TINY)[0] == 0
    code, _, err = run_cli("train", tiny_npz, "--out", run, "--resume", "--kimg", "0.064", "--quiet")
    assert_one_line_error(code, err, "trained on 32 px colour images", "28 px grayscale")


# --- 8. one image-opening policy --------------------------------------------------------------------------------

def test_open_image_refuses_a_decompression_bomb_like_training_does(tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(bomb)  # 144 megapixels: over Pillow's warning limit, under its error limit
    with pytest.raises(UserError, match="too large"):
        open_image(bomb)
    ok = tmp_path / "ok.png"
    Image.new("RGBA", (40, 30), (255, 0, 0, 128)).save(ok)
    img = open_image(ok)
    assert img.mode == "RGB" and img.size == (40, 30) and img.getpixel((0, 0)) == (255, 127, 127)
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(UserError, match="not an image"):
        open_image(tmp_path / "text.png")
    with pytest.raises(UserError, match="not found"):
        open_image(tmp_path / "missing.png")


def test_style_refuses_the_bomb_that_training_refuses(tmp_path, run_cli):
    bomb, photo = tmp_path / "bomb.png", tmp_path / "photo.png"
    Image.new("1", (12000, 12000)).save(bomb)
    Image.new("RGB", (40, 30), (20, 120, 200)).save(photo)
    for content, style in ((bomb, photo), (photo, bomb)):
        code, _, err = run_cli("style", content, style, "-o", tmp_path / "out.png", "--size", "32", "--steps", "1")
        assert_one_line_error(code, err, "too large")
    assert not (tmp_path / "out.png").exists()
