"""What a new user sees: the training console, short runs, the run's creation time, and --help."""
import json
import subprocess
import sys
import time

import click
import pytest

from conftest import tiny_config, tiny_flags
from gansmith.cli import COMMANDS, cli
from gansmith.training import TrainConfig, train
from gansmith.training.progress import Progress


# --- training console ----------------------------------------------------------------------------------
def test_train_console_off_a_terminal_is_a_summary_and_one_line_per_interval(run_cli, tiny_npz, tmp_path):
    run = tmp_path / "run"
    code, out, err = run_cli("train", tiny_npz, "--out", run, *tiny_flags(kimg=0.1))
    assert code == 0, err
    assert "\r" not in err  # no progress-bar redraws in a log file
    # The start-up summary: what was found, what was chosen, where outputs go.
    assert "squares.npz: 48 images, 28 px, grayscale" in err
    assert "dcgan, width 8, z 16, loss ns, batch 16" in err and "cpu, float32" in err
    assert "0.1 kimg" in err and f"{run} (samples/latest.png" in err
    assert "augment:" not in err  # TINY says --augment none
    # One plain line per logging interval (the last, partial one included), each against the budget.
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    lines = [line for line in err.splitlines() if line.startswith("training ")]
    assert len(lines) == len(records) == 4  # 0.032, 0.064, 0.096 kimg and the end at 0.112
    assert all("kimg, loss D" in line and "/0.1 kimg" in line and "img/s" in line for line in lines)
    assert lines[-1].startswith("training 100%") and "0.11/0.1 kimg" in lines[-1]
    # The last lines point to the samples and the report, like `demo`.
    assert f"samples:     {run / 'samples' / 'latest.png'}" in out
    assert f"gansmith report {run}" in out  # TINY turns the report off: say how to write it


def test_progress_bar_shows_the_budget_eta_kimg_and_losses():
    losses = {"loss_d": 0.7, "loss_g": 0.8, "d_real": 0.55, "d_fake": 0.45, "img_per_s": 213.0}
    by_kimg = Progress(TrainConfig(kimg=0.3), 0, True, terminal=True)
    by_kimg.update(160)
    assert "53%" in str(by_kimg.bar) and "0.16/0.3 kimg" in str(by_kimg.bar)
    by_kimg.interval(losses, 304)  # a batch past the target: the bar ends at 100 %, not beyond
    text = str(by_kimg.bar)
    assert "100%" in text and "0.30/0.3 kimg" in text and "loss D 0.700 G 0.800" in text and "213 img/s" in text
    by_kimg.close()
    by_time = Progress(TrainConfig(minutes=0.01), 0, True, terminal=True)  # 0.6 s
    time.sleep(0.2)
    by_time.update(64)
    text = str(by_time.bar)
    assert "0.06 kimg" in text and "<00:00" in text and "?" not in text  # an ETA, from the time budget
    assert 20 <= by_time.bar.n * 100 <= 80
    by_time.close()


def test_a_short_run_writes_metrics_and_says_it_is_too_short_to_judge(run_cli, tiny_npz, tmp_path):
    run = tmp_path / "short"
    train(tiny_config(tiny_npz, run, kimg=0.048, log_every=1.0, report=True), progress=False)  # < 1 log interval
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["kimg"] == 0.048 and records[0]["step"] == 3
    code, out, err = run_cli("doctor", run)
    assert code == 0, err
    assert "too short to judge: 1 logging interval" in out and "healthy" not in out
    page = (run / "report.html").read_text()
    assert "too short to judge" in page and "No findings: the run doctor" not in page


def test_report_keeps_the_creation_time_and_lists_resumes(run_cli, tiny_npz, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(tiny_npz, run, kimg=0.032), progress=False)
    created = json.loads((run / "config.json").read_text())["created"]
    time.sleep(1.1)  # the times have a resolution of a second
    train(tiny_config(tiny_npz, run, kimg=0.064), resume=True, progress=False)
    config = json.loads((run / "config.json").read_text())
    assert config["created"] == created and len(config["resumed"]) == 1 and config["resumed"][0] != created
    code, out, err = run_cli("report", run)
    assert code == 0, err
    page = (run / "report.html").read_text()
    assert f"created {created}" in page and f"resumed {config['resumed'][0]}" in page


def test_out_defaults_to_runs_slash_the_data_name():
    from gansmith.cli.train import default_out
    assert default_out("photos/") == "runs/photos" and default_out("builtin:fashion-mnist") == "runs/fashion-mnist"
    assert default_out("data/emoji.zip") == "runs/emoji" and default_out("a/train-images.gz,b.gz") == "runs/train-images"


def test_small_data_turns_diffaugment_on_by_itself_and_says_so(run_cli, tiny_npz, tmp_path):
    flags = tiny_flags(kimg=0.032)
    del flags[flags.index("--augment"):flags.index("--augment") + 2]  # the default: auto
    code, out, err = run_cli("train", tiny_npz, "--out", tmp_path / "run", *flags)
    assert code == 0, err
    assert "augment:   translation,cutout,color (DiffAugment; on by itself below 200 images" in err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["augment"] == "translation,cutout,color"


def test_augment_auto_depends_on_the_number_of_images_and_none_means_off():
    from gansmith.training.config import resolve_augment
    assert resolve_augment("auto", 199) == "translation,cutout,color"
    assert resolve_augment("auto", 200) == "" and resolve_augment("auto", None) == ""
    assert resolve_augment("none", 10) == "" and resolve_augment("", 10) == ""
    assert resolve_augment("translation+color", 10**6) == "translation+color"


# --- help --------------------------------------------------------------------------------------------
# Their options and defaults come from the registries, which are filled by importing the networks (PyTorch):
# docs/architecture.md, "Why train --help takes seconds".
HEAVY = ("train", "sweep")


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in HEAVY] + [""])
def test_help_answers_without_importing_pytorch(command):
    code = ("import sys, time; t = time.perf_counter(); from gansmith.cli import main\n"
            f"try:\n    main({[command, '--help'] if command else ['--help']!r})\n"
            "except SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    verdict, seconds = done.stdout.split()[-2:]
    assert "Usage: gansmith" in done.stdout and verdict == "NO-TORCH"
    assert float(seconds) < 3.0  # a generous bound: well under a second on an idle machine (PyTorch alone: ~2 s)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in ("style", "sample")])
def test_every_option_is_described_with_its_default_and_every_command_has_examples(command):
    cmd = cli.get_command(click.Context(cli), command)
    assert cmd.epilog and "Examples:" in cmd.epilog
    for param in cmd.params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        assert param.help, f"{command} {param.opts}: no help"
        if param.default is not None and not (param.required or param.is_flag or param.secondary_opts):
            assert "[default: " in param.help, f"{command} {param.opts}: no default shown"
        assert "." + "FEATURE_BATCH" not in param.help  # no internal names


def test_top_level_summaries_are_whole_sentences(run_cli):
    code, out, err = run_cli("--help")
    assert code == 0
    text = " ".join(out.split())
    for name, (_, summary) in COMMANDS.items():
        assert f"{name} {summary}" in text and summary.endswith(".")  # whole, not cut at a width
