import os

import numpy as np
import pytest
import torch

# Tiny test models run fastest on one thread (two threads fight over a shared 2-core machine);
# subprocesses started by tests (the CLI, torchrun) inherit this.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

from gansmith.cli import main


@pytest.fixture
def run_cli(capsys):
    """Run the gansmith CLI in-process: returns (exit code, stdout, stderr)."""
    def run(*args):
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture
def tiny_npz(tmp_path):
    """48 synthetic 28x28 grayscale images: bright squares of different sizes on black."""
    rng = np.random.default_rng(0)
    x = np.zeros((48, 28, 28), np.uint8)
    for i in range(48):
        s = rng.integers(4, 14)
        y0, x0 = rng.integers(0, 28 - s, size=2)
        x[i, y0:y0 + s, x0:x0 + s] = 255
    path = tmp_path / "squares.npz"
    np.savez(path, x=x)
    return path


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", help="run the long versions (e.g. 20+ kill -9 trials)")


def pytest_configure(config):
    config.addinivalue_line("markers", "long_capable: a test with a quick version and a --long version")


@pytest.fixture
def long_run(request):
    """True when pytest was given --long."""
    return request.config.getoption("--long")


# The tiny training configuration every training test starts from (seconds per run), as API options and as flags.
# augment none: the tiny data sets would turn DiffAugment on by itself (tested on its own in test_console.py)
TINY = dict(width=8, z_dim=16, batch=16, depth=0, report=False, log_every=0.032, sample_every=0.064,
            checkpoint_every=0.064, augment="none")


def tiny_config(data, out, **overrides):
    from gansmith.training import TrainConfig
    return TrainConfig(data=str(data), out=str(out), **{**TINY, **overrides})


def tiny_flags(**overrides) -> list[str]:
    flags = []
    for k, v in {**TINY, **overrides}.items():
        name = "--" + k.replace("_", "-")
        flags += [name] if v is True else [f"--no-{name[2:]}"] if v is False else [name, str(v)]
    return flags


@pytest.fixture
def trained_run(tiny_npz, tmp_path, run_cli):
    """A tiny run trained for 0.128 kimg through the CLI (8 steps, checkpoints at steps 4 and 8)."""
    run = tmp_path / "run"
    code, out, err = run_cli("train", tiny_npz, "--out", run, "--kimg", "0.128", "--quiet", *tiny_flags())
    assert code == 0, err
    return run


def assert_one_line_error(code, err, *fragments):
    """Exit code 2 and one line on stderr, `error: ...`, holding every fragment."""
    assert code == 2, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for f in fragments:
        assert f in lines[0], lines[0]
