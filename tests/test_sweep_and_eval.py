"""FID/KID during training (best.pt), the sweep command, and the doctor command."""
import dataclasses
import json
from pathlib import Path

import pytest

from gansmith.data import load_images
from gansmith.errors import UserError
from gansmith.generate import load_generator
from gansmith.training import TrainConfig, train
from gansmith.training.checkpoint import load_checkpoint
from gansmith.training.evaluation import evaluate_generator
from gansmith.training.sweep import command_line, parse_grid, run_sweep

from conftest import TINY


def test_eval_every_logs_fid_and_keeps_the_best_checkpoint(tiny_npz, tmp_path, run_cli):
    run = tmp_path / "run"
    train(TrainConfig(data=str(tiny_npz), out=str(run), kimg=0.192, eval_every=0.064, eval_n=12, **TINY),
          progress=False)
    records = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r for r in records if "fid" in r]
    assert [r["step"] for r in evaluated] == [4, 8, 12]
    assert all(r["fid"] > 0 and "kid" in r and "kid_std" in r for r in evaluated)
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    best_record = min(evaluated, key=lambda r: r["fid"])
    assert best["step"] == best_record["step"]
    # what training logs is what evaluating the saved checkpoint gives (same generator, statistics, seed)
    best_G, _ = load_generator(run / "checkpoints" / "best.pt")
    again = evaluate_generator(best_G, load_images(str(tiny_npz), progress=False), 12)
    assert again["fid"] == best_record["fid"]
    code, out, err = run_cli("sample", run, "--checkpoint", "best", "-n", "4", "-o", tmp_path / "best.png")
    assert code == 0, err


def test_sweep_ranks_trials_by_kid_and_does_not_rerun_finished_ones(tiny_npz, tmp_path, monkeypatch):
    base = TrainConfig(**TINY)
    results = run_sweep(str(tiny_npz), tmp_path / "sw", "g_lr=1e-4,1e-3", 0.01, base, eval_n=12, progress=False)
    assert len(results) == 2
    assert results[0]["kid"] <= results[1]["kid"]
    assert "--width 8" in results[0]["command"] and "--g-lr" in results[0]["command"]
    saved = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert [t["kid"] for t in saved["trials"]] == [t["kid"] for t in results]

    import gansmith.training.loop as loop
    monkeypatch.setattr(loop, "train", lambda *a, **k: pytest.fail("a finished trial was trained again"))
    again = run_sweep(str(tiny_npz), tmp_path / "sw", "g_lr=1e-4,1e-3", 0.01, base, eval_n=12, progress=False)
    assert [t["params"] for t in again] == [t["params"] for t in results]


def test_an_interrupted_sweep_stops_and_restarts_the_unfinished_trial_from_scratch(tiny_npz, tmp_path, monkeypatch):
    import gansmith.training.loop as loop
    real_train = loop.train

    def stopped_in_second_trial(cfg, progress=True):
        result = real_train(cfg, progress=progress)
        if cfg.out.endswith("trial-001"):
            (Path(cfg.out) / "leftover").write_text("x")
            return dataclasses.replace(result, interrupted=True)  # as after Ctrl-C: checkpoint saved, loop left
        return result

    monkeypatch.setattr(loop, "train", stopped_in_second_trial)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(str(tiny_npz), tmp_path / "sw", "g_lr=1e-4,1e-3", 0.01, TrainConfig(**TINY), eval_n=12, progress=False)
    saved = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert [t["params"] for t in saved["trials"]] == [{"g_lr": 1e-4}]  # the stopped trial is not recorded
    monkeypatch.setattr(loop, "train", real_train)
    results = run_sweep(str(tiny_npz), tmp_path / "sw", "g_lr=1e-4,1e-3", 0.01, TrainConfig(**TINY), eval_n=12,
                        progress=False)
    assert len(results) == 2
    assert not (tmp_path / "sw" / "trial-001" / "leftover").exists()  # trained again from scratch


def test_grid_parsing():
    assert parse_grid("g_lr=1e-4,2e-4 loss=ns,hinge sn=true,false d-steps=1,2 d_width=16 res=32") == {
        "g_lr": [1e-4, 2e-4], "loss": ["ns", "hinge"], "sn": [True, False], "d_steps": [1, 2], "d_width": [16],
        "res": [32]}
    assert all(type(v[0]) is int for k, v in parse_grid("d_width=16 res=32 width=8").items())  # not 16.0
    for bad in ("", "g_lr", "nonsense=1", "out=x", "g_lr=fast", "sn=maybe"):
        with pytest.raises(UserError):
            parse_grid(bad)
    assert command_line("d", {"g_lr": 0.001, "sn": True}) == "gansmith train d --out runs/best --g-lr 0.001 --sn"


def test_doctor_command_summarizes_a_run(tiny_npz, tmp_path, run_cli):
    run = tmp_path / "run"
    train(TrainConfig(data=str(tiny_npz), out=str(run), kimg=0.128, **TINY), progress=False)
    code, out, err = run_cli("doctor", run)
    assert code == 0, err
    assert "0.128 kimg" in out and "latest: D loss" in out
    code, out, err = run_cli("doctor", run, "--json")
    summary = json.loads(out)
    assert summary["step"] == 8 and "verdict" in summary
    code, out, err = run_cli("doctor", tmp_path / "nothing")
    assert code == 2 and "no metrics.jsonl" in err


def test_sweep_cli_has_one_eval_n_option(run_cli):
    # the trial's --eval-n (KID sample) must not clash with train's --eval-n (evaluation during training)
    code, out, err = run_cli("sweep", "--help")
    assert code == 0, err
    assert out.count("--eval-n") == 1 and "--eval-every" not in out
    assert "more than once" not in out + err
