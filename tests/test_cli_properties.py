"""Every command, every option, hostile values (hypothesis): the answer is always exit 0 or 2 with no traceback,
nothing is written outside the scratch folder, and an existing run stays usable.

The options are read from the commands themselves (click's parameters), so a new option is fuzzed without editing
this file. A few examples per command keep the whole test under a minute; a watchdog presses Ctrl-C on a command
that legitimately runs long (a valid but large value), which must then end as an interruption does (exit 130).
In CI the examples are fixed (derandomized); GANSMITH_FUZZ_SCALE=20 runs 20 times as many, drawn afresh.
"""
import contextlib
import os
import signal
import subprocess
from pathlib import Path

import click
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from gansmith.cli import COMMANDS, cli
from gansmith.training.checkpoint import list_step_checkpoints, load_usable

from conftest import tiny_flags

WATCHDOG_SECONDS = 4.0
SCALE = int(os.environ.get("GANSMITH_FUZZ_SCALE", "1"))
REPO = Path(__file__).resolve().parent.parent

INTS = ["0", "-1", "1", "3", "-7", "99999999999999999999999", "-99999999999999999999999", "2147483648", "", "x",
        "1.5", "nan", "inf", "1e3"]
FLOATS = ["0", "-1", "0.5", "nan", "inf", "-inf", "1e400", "-1e400", "1e308", "1e-300", "-0.0", "", "x", "1e3"]
TEXTS = ["", " ", "x", "-1", "nan", "a,b", ",,,", "=", "g_lr=", "relu9_9", "0:0", "é", "x" * 300]
# Not "/" nor "/dev/null": as root those are writable places a command may rightly use (tests/test_hardening.py
# checks that a device file is never replaced).
PATHS = ["", ".", "/proc/x", "/sys/x", "{file}", "{file}/sub", "{scratch}/new", "{run}",
         "{scratch}/" + "a" * 300, "{scratch}/a\nb", "{scratch}/sp ace", "{data}", "{image}", "-"]
PATH_PARAMS = {"data", "out", "output", "outdir", "run", "a", "b", "content", "styles", "weights", "frames_dir", "gif",
               "log_path", "checkpoint", "real_spec"}


def base_args(command: str, s: dict) -> dict:
    """A cheap, valid invocation of each command, as {parameter name: tokens} (arguments in order)."""
    tiny = tiny_flags(log_every=0.016, sample_every=1, checkpoint_every=1)
    return {
        "train": {"data": [s["data"]], "out": ["--out", s["scratch"] / "t"], "kimg": ["--kimg", "0.016"],
                  "quiet": ["--quiet"], "_": tiny},
        "sample": {"run": [s["run"]], "n": ["-n", "4"], "output": ["-o", s["scratch"] / "g.png"]},
        "demo": {"out": ["--out", s["scratch"] / "d"], "minutes": ["--minutes", "0.002"], "quiet": ["--quiet"]},
        "doctor": {"run": [s["run"]]},
        "sweep": {"data": [s["data"]], "grid": ["--grid", "g_lr=1e-4"], "minutes_each": ["--minutes-each", "0.002"],
                  "eval_n": ["--eval-n", "10"], "out": ["--out", s["scratch"] / "s"], "quiet": ["--quiet"],
                  "_": tiny},
        "fid": {"a": [s["data"]], "b": [s["data"]], "n": ["--n", "10"], "as_json": ["--json"]},
        "eval": {"run": [s["run"]], "n": ["--n", "10"], "metric_names": ["--metrics", "kid"]},
        "style": {"content": [s["image"]], "styles": [s["image"]], "output": ["-o", s["scratch"] / "st.png"],
                  "size": ["--size", "32"], "steps": ["--steps", "1"], "quiet": ["--quiet"]},
        "report": {"run": [s["run"]]},
        "interpolate": {"run": [s["run"]], "output": ["-o", s["scratch"] / "w.gif"], "frames": ["--frames", "2"],
                        "size": ["--size", "28"]},
        "export": {"run": [s["run"]], "output": ["-o", s["scratch"] / "G.pt"]},
        "mix": {"run": [s["run"]], "output": ["-o", s["scratch"] / "mix.png"]},
        "project": {"run": [s["run"]], "photo": [s["image"]], "outdir": ["-o", s["scratch"] / "p"],
                    "steps": ["--steps", "2"]},
    }[command]


# The costly commands (the Inception network, VGG19, a built-in data set) get fewer examples.
EXAMPLES = {"train": 6, "sample": 6, "doctor": 4, "report": 3, "interpolate": 4, "export": 3, "demo": 2, "sweep": 2,
            "fid": 2, "eval": 2, "style": 2, "mix": 2, "project": 2}


def hostile_value(param: click.Parameter, s: dict):
    """A strategy of odd tokens for one parameter."""
    if isinstance(param, click.Option) and param.is_flag:
        names = param.opts + param.secondary_opts
        return st.sampled_from(names).map(lambda n: [n])
    if param.name in PATH_PARAMS:
        values = st.sampled_from(PATHS).map(lambda p: p.format(**{k: str(v) for k, v in s.items()}))
    elif isinstance(param.type, click.Choice):
        values = st.sampled_from(list(param.type.choices) + TEXTS)
    elif isinstance(param.type, (click.types.IntParamType, click.IntRange)):
        values = st.sampled_from(INTS)
    elif isinstance(param.type, (click.types.FloatParamType, click.FloatRange)):
        values = st.sampled_from(FLOATS)
    else:
        values = st.sampled_from(TEXTS + FLOATS[:6])
    prefix = [param.opts[0]] if isinstance(param, click.Option) else []
    return values.map(lambda v: prefix + [v])


def argv(command: str, base: dict, changes: dict) -> list[str]:
    params = {p.name: p for p in cli.commands[command].params}
    tokens = []
    for name, value in {**base, **changes}.items():
        if name in params and isinstance(params[name], click.Argument):
            continue
        tokens += [str(t) for t in value]
    arguments = [str(t) for p in params.values() if isinstance(p, click.Argument)
                 for t in (changes.get(p.name) or base.get(p.name, []))]
    return [command] + tokens + ["--"] * bool(arguments) + arguments


@contextlib.contextmanager
def watchdog(seconds: float):
    """Press Ctrl-C every `seconds` until the block ends; yields a list that records whether it did."""
    fired = []

    def press(signum, frame):
        fired.append(True)
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGALRM, press)
    signal.setitimer(signal.ITIMER_REAL, seconds, seconds)
    try:
        yield fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def snapshot(folder: Path) -> set:
    return {p for p in folder.iterdir()}


@pytest.fixture(scope="module")
def scratch_setup(tmp_path_factory):
    """A tiny trained run, data, an image and a plain file, in a module-wide folder; commands run in scratch/."""
    from gansmith.cli import main
    root = tmp_path_factory.mktemp("properties")
    rng = np.random.default_rng(0)
    data = root / "squares.npz"
    np.savez(data, x=(rng.random((32, 28, 28)) > 0.7).astype(np.uint8) * 255)
    image = root / "photo.png"
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(image)
    (root / "plain.txt").write_text("plain")
    run = root / "run"
    try:
        main(["train", str(data), "--out", str(run), "--kimg", "0.032", "--quiet", *tiny_flags()])
    except SystemExit as e:
        assert e.code in (0, None)
    load_every_command()
    return {"data": data, "image": image, "file": root / "plain.txt", "run": run, "root": root}


def run_is_intact(run: Path) -> None:
    assert (run / "config.json").is_file()
    checkpoints = list_step_checkpoints(run / "checkpoints")
    assert checkpoints
    for path in checkpoints:
        load_usable(path)


def check_command(command, data, setup, run_cli, monkeypatch):
    scratch = setup["root"] / "scratch"
    scratch.mkdir(exist_ok=True)
    s = {**setup, "scratch": scratch}
    monkeypatch.chdir(scratch)
    monkeypatch.setenv("GANSMITH_CACHE", str(scratch / "cache"))
    base = base_args(command, s)
    params = [p for p in cli.commands[command].params if p.name not in ("help",)]
    chosen = data.draw(st.lists(st.sampled_from(params), min_size=1, max_size=3, unique_by=lambda p: p.name))
    changes = {p.name: data.draw(hostile_value(p, s)) for p in chosen}
    args = argv(command, base, changes)
    outside = snapshot(setup["root"].parent), git_status()
    with watchdog(WATCHDOG_SECONDS) as fired:
        code, out, err = run_cli(*args)
    assert "Traceback" not in err and "Traceback" not in out, (args, err)
    assert code in ((0, 2, 130) if fired else (0, 2)), (args, code, err[-2000:])
    if code == 2:
        assert [l for l in err.splitlines() if l.startswith("error:")], (args, err)
    assert (snapshot(setup["root"].parent), git_status()) == outside, f"{args} wrote outside the scratch folder"
    run_is_intact(setup["run"])


def git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout


def make_test(command):
    @settings(max_examples=EXAMPLES[command] * SCALE, deadline=None, derandomize=SCALE == 1,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(data=st.data())
    def test(data, scratch_setup, run_cli, monkeypatch):
        check_command(command, data, scratch_setup, run_cli, monkeypatch)
    test.__name__ = f"test_{command}_answers_hostile_values_with_exit_0_or_2"
    return test


def load_every_command():
    for name in COMMANDS:
        cli.get_command(None, name)


def test_every_command_is_fuzzed():
    load_every_command()
    assert set(cli.commands) == set(EXAMPLES)


for _command in EXAMPLES:
    globals()[f"test_{_command}_answers_hostile_values_with_exit_0_or_2"] = make_test(_command)
