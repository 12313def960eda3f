"""Extension points: a new architecture, loss or penalty is one registered spec, and the rest of gansmith (the CLI's
choices, validation, training, checkpoints, resume, sampling, the doctor) takes it up without other changes."""
import json

import pytest
import torch
from torch import nn

from gansmith.generate import generate_images, load_generator
from gansmith.losses import LOSSES, LossSpec
from gansmith.models import ARCHITECTURES, ArchSpec, DefaultRow
from gansmith.regularizers import REGULARIZERS, Regularizer
from gansmith.training import train
from gansmith.training.checkpoint import load_checkpoint
from conftest import tiny_config, tiny_flags


class LinearGenerator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.res, self.channels, self.z_dim = cfg.res, cfg.channels, cfg.z_dim
        self.fc = nn.Linear(cfg.z_dim, cfg.channels * cfg.res * cfg.res)

    def forward(self, z):
        return torch.tanh(self.fc(z)).view(-1, self.channels, self.res, self.res)


class LinearDiscriminator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.fc = nn.Linear(cfg.channels * cfg.res * cfg.res, 1)

    def forward(self, x):
        return self.fc(x.flatten(1)).squeeze(1)


TOY_ARCH = ArchSpec(
    "toy-linear", "one linear layer each way", LinearGenerator, LinearDiscriminator,
    rows=(DefaultRow("toy-linear", {"width": 1, "batch": 16, "g_lr": 1e-3, "d_lr": 1e-3, "beta1": 0.5,
                                    "beta2": 0.999, "ema": 0.0, "depth": 0, "standing_stats": False, "r1": 0.0}),),
    resolve=lambda cfg: {"d_norm": "none"})
TOY_LOSS = LossSpec(
    "toy-pm1", "least squares with targets +1 and -1",
    d_loss=lambda real, fake, label: 0.5 * ((real - 1) ** 2).mean() + 0.5 * ((fake + 1) ** 2).mean(),
    g_loss=lambda fake, real: 0.5 * ((fake - 1) ** 2).mean(), balance=(0.05, 1.5), saturated=0.02)


@pytest.fixture
def toy_arch():
    ARCHITECTURES.register(TOY_ARCH)
    yield TOY_ARCH
    ARCHITECTURES.unregister(TOY_ARCH.name)


@pytest.fixture
def toy_loss():
    LOSSES.register(TOY_LOSS)
    yield TOY_LOSS
    LOSSES.unregister(TOY_LOSS.name)


def test_a_new_architecture_trains_checkpoints_resumes_and_samples(toy_arch, tiny_npz, tmp_path, run_cli):
    flags = tiny_flags()
    code, out, err = run_cli("train", "--help")
    assert "toy-linear" in out  # the CLI's choices come from the registry
    code, out, err = run_cli("train", tiny_npz, "--out", tmp_path / "a", "--arch", "toy-linear", "--kimg", "0.128",
                             "--quiet", *flags)
    assert code == 0, err
    code, out, err = run_cli("train", tiny_npz, "--out", tmp_path / "b", "--arch", "toy-linear", "--kimg", "0.064",
                             "--quiet", *flags)
    assert code == 0, err
    code, out, err = run_cli("train", tiny_npz, "--out", tmp_path / "b", "--resume", "--kimg", "0.128", "--quiet")
    assert code == 0, err
    a, b = (load_checkpoint(sorted((tmp_path / r / "checkpoints").glob("step-*.pt"))[-1]) for r in "ab")
    assert a["step"] == b["step"] == 8 and a["config"]["arch"] == "toy-linear" and a["config"]["g_lr"] == 1e-3
    assert all(torch.equal(a["G"][k], b["G"][k]) for k in a["G"]), "resume is not bit-exact"
    G, _ = load_generator(tmp_path / "a")
    assert isinstance(G, LinearGenerator) and generate_images(G, 3).shape == (3, 28, 28, 1)


def test_an_architecture_refuses_options_it_does_not_own(toy_arch, tiny_npz, tmp_path, run_cli):
    code, out, err = run_cli("train", tiny_npz, "--out", tmp_path / "r", "--arch", "toy-linear", "--sn")
    assert code == 2 and "--arch toy-linear does not use --sn" in err
    assert not (tmp_path / "r").exists()


def test_a_new_loss_trains_with_balance_and_resumes(toy_loss, tiny_npz, tmp_path, run_cli):
    run = tmp_path / "run"
    common = ["--loss", "toy-pm1", "--balance", "--quiet", *tiny_flags()]
    code, out, err = run_cli("train", tiny_npz, "--out", run, "--kimg", "0.064", *common)
    assert code == 0, err
    code, out, err = run_cli("train", tiny_npz, "--out", run, "--resume", "--kimg", "0.128", "--quiet")
    assert code == 0, err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6, 8] and all("balance" in r for r in records)
    straight = train(tiny_config(tiny_npz, tmp_path / "straight", kimg=0.128, loss="toy-pm1", balance=True),
                     progress=False)
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(sorted((run / "checkpoints").glob("step-*.pt"))[-1])
    assert all(torch.equal(a["D"][k], b["D"][k]) for k in a["D"])


def test_a_new_loss_is_the_one_the_step_uses(toy_loss, tiny_npz, tmp_path):
    """The toy loss's D(real) is measured against +1: after D trains, its raw score on real images rises above 0."""
    run = tmp_path / "run"
    train(tiny_config(tiny_npz, run, kimg=0.32, loss="toy-pm1", g_lr=1e-6, d_lr=2e-3), progress=False)
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["d_real"] > 0.3 and last["d_fake"] < -0.3  # raw scores: the loss spec has no probabilities


def test_a_registered_generator_penalty_runs_lazily_in_the_g_phase(tiny_npz, tmp_path):
    calls = []

    def output_energy(x):
        calls.append(x.G.training)
        return x.fake.pow(2).mean()

    REGULARIZERS.register(Regularizer("toy-energy", "G", lambda cfg: 0.1, lambda cfg: 3, output_energy))
    try:
        train(tiny_config(tiny_npz, tmp_path / "run", kimg=0.16), progress=False)  # 10 steps
    finally:
        REGULARIZERS.unregister("toy-energy")
    assert calls == [True] * 4  # steps 0, 3, 6, 9
