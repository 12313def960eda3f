"""The stable-training options, each shown to act: losses and penalties against hand computation, the
D-side layers (spectral norm, minibatch std), DiffAugment, label smoothing, instance noise, --d-steps, the
balance policy, the divergence guard (rollback with lower learning rates, give up after 3) and the EMA.

Unit tests use hand-sized tensors; the end-to-end ones train tiny models (width 8, z 16, batch 16) for a few
steps and spy on the step's functions, so each takes seconds.
"""
import copy
import json
import math

import pytest
import torch
from torch import nn

import dataclasses

from gansmith import losses, regularizers
from gansmith.errors import UserError
from gansmith.models import build_discriminator
from gansmith.models.dcgan import Discriminator
from gansmith.models.layers import MinibatchStdDev
from gansmith.training import TrainConfig, train
from gansmith.training import augment as aug
from gansmith.training import loop as loop_module
from gansmith.training import step as step_module
from gansmith.training import trainer as trainer_module
from gansmith.training.checkpoint import list_step_checkpoints, load_checkpoint
from gansmith.training.config import resolve, shape_differences, validate
from gansmith.training.ema import ema_decay, make_ema, standing_statistics, update_ema
from gansmith.training.lr import decay_factor
from gansmith.training.trainer import Trainer
from gansmith.training.policies import BalancePolicy, DivergenceGuard
from gansmith.training.step import DiscriminatorView, Phases, discriminator_phase
from conftest import TINY, tiny_config, tiny_flags

CLI_TINY = tiny_flags() + ["--quiet"]
BALANCE = {spec.name: spec.balance for spec in losses.LOSSES if spec.balance}


def wrap_losses(monkeypatch, d_loss=None, g_loss=None):
    """Make every new trainer's phases call d_loss(original, real, fake, label) / g_loss(original, fake, real)."""
    original = Phases.from_config.__func__

    def from_config(cls, cfg, **kwargs):
        phases = original(cls, cfg, **kwargs)
        spec = phases.loss
        changes = {}
        if d_loss:
            changes["d_loss"] = lambda r, f, label: d_loss(spec, r, f, label)
        if g_loss:
            changes["g_loss"] = lambda f, r: g_loss(spec, f, r)
        phases.loss = dataclasses.replace(spec, **changes)
        return phases

    monkeypatch.setattr(Phases, "from_config", classmethod(from_config))


def records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def events(run, kind=None):
    return [e for r in records(run) for e in r.get("events", []) if kind is None or e["kind"] == kind]


class ListBatches:
    """Stands in for the loop's Batches: batch i of a fixed random set."""

    def __init__(self, n=16, res=28, channels=1, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(64, channels, res, res, generator=g) * 2 - 1
        self.n, self.calls = n, []

    def get(self, i):
        self.calls.append(i)
        idx = torch.arange(i * self.n, (i + 1) * self.n) % self.x.shape[0]
        return self.x[idx]


def tiny_trainer(**kw):
    cfg = resolve(TrainConfig(**{**TINY, **kw}), 28, 1)
    return Trainer(cfg)


# --- losses: hand computation on fixed logits ------------------------------------------------------------
REAL = torch.tensor([2.0, -1.0])
FAKE = torch.tensor([0.5, -3.0])


def softplus(x):
    return math.log1p(math.exp(x))


def bce(logit, target):
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


HAND_D = {
    "ns": (softplus(-2) + softplus(1)) / 2 + (softplus(0.5) + softplus(-3)) / 2,
    "hinge": (0 + 2) / 2 + (1.5 + 0) / 2,
    "wgan-gp": (0.5 - 3) / 2 - (2 - 1) / 2,
    "lsgan": 0.5 * ((2 - 1) ** 2 + (-1 - 1) ** 2) / 2 + 0.5 * (0.5 ** 2 + 3 ** 2) / 2,
    "rpgan": (softplus(0.5 - 2) + softplus(-3 - (-1))) / 2,   # softplus(D(fake) - D(real)) over the pairs
}
HAND_G = {
    "ns": (softplus(-0.5) + softplus(3)) / 2,
    "hinge": 1.25,
    "wgan-gp": 1.25,
    "lsgan": 0.5 * ((0.5 - 1) ** 2 + (-3 - 1) ** 2) / 2,
    "rpgan": (softplus(2 - 0.5) + softplus(-1 - (-3))) / 2,   # softplus(D(real) - D(fake))
}


@pytest.mark.parametrize("kind", losses.LOSSES.names())
def test_loss_values_match_hand_computation(kind):
    assert losses.discriminator_loss(kind, REAL, FAKE).item() == pytest.approx(HAND_D[kind], rel=1e-6)
    assert losses.generator_loss(kind, FAKE, REAL).item() == pytest.approx(HAND_G[kind], rel=1e-6)


def test_losses_have_the_right_direction():
    """D's loss falls as it separates better, G's falls as D rates its samples more real."""
    real = torch.tensor([0.0])
    for kind in losses.LOSSES.names():
        worse = losses.discriminator_loss(kind, torch.tensor([0.0]), torch.tensor([0.0]))
        better = losses.discriminator_loss(kind, torch.tensor([0.9]), torch.tensor([-0.9]))
        assert better < worse, kind
        assert (losses.generator_loss(kind, torch.tensor([0.9]), real)
                < losses.generator_loss(kind, torch.tensor([-0.9]), real)), kind


def test_label_smoothing_moves_only_the_real_target():
    ns = losses.discriminator_loss("ns", REAL, FAKE, real_label=0.9).item()
    assert ns == pytest.approx((bce(2, 0.9) + bce(-1, 0.9)) / 2 + (bce(0.5, 0) + bce(-3, 0)) / 2, rel=1e-6)
    ls = losses.discriminator_loss("lsgan", REAL, FAKE, real_label=0.9).item()
    assert ls == pytest.approx(0.5 * (1.1 ** 2 + 1.9 ** 2) / 2 + 0.5 * (0.25 + 9) / 2, rel=1e-6)
    # the fake half is untouched: identical real logits, different fake logits, same difference
    a = losses.discriminator_loss("ns", REAL, FAKE, 0.9) - losses.discriminator_loss("ns", REAL, FAKE, 1.0)
    b = losses.discriminator_loss("ns", REAL, FAKE + 1, 0.9) - losses.discriminator_loss("ns", REAL, FAKE + 1, 1.0)
    assert a.item() == pytest.approx(b.item(), abs=1e-6) and a.item() > 0


def test_decision_threshold():
    assert losses.LOSSES.get("lsgan").threshold == 0.5
    assert all(losses.LOSSES.get(k).threshold == 0.0 for k in ("ns", "hinge", "wgan-gp", "rpgan"))


# --- gradient penalties on a linear D, where the gradient is the weight ---------------------------------
def linear_d(w: torch.Tensor) -> nn.Module:
    lin = nn.Linear(w.numel(), 1)
    with torch.no_grad():
        lin.weight.copy_(w.view(1, -1))
        lin.bias.fill_(0.3)
    return nn.Sequential(nn.Flatten(), lin)


def test_r1_on_a_linear_d_is_the_squared_weight_norm():
    w = torch.randn(1 * 4 * 4, generator=torch.Generator().manual_seed(0))
    real = torch.randn(5, 1, 4, 4)
    assert regularizers.r1_penalty(linear_d(w), real).item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)


@pytest.mark.parametrize("norm", [0.2, 1.0, 3.0])
def test_gp_on_a_linear_d_is_squared_distance_of_weight_norm_from_one(norm):
    w = torch.randn(16)
    w = w / w.norm() * norm
    real, fake = torch.randn(6, 1, 4, 4), torch.randn(6, 1, 4, 4)
    gp = regularizers.gradient_penalty(linear_d(w), real, fake, torch.Generator().manual_seed(1))
    assert gp.item() == pytest.approx((norm - 1) ** 2, abs=1e-5)


def d_update_delta(phases, step, w):
    """Weight change of a linear D after one SGD(lr=1) D phase."""
    D = linear_d(w)
    opt = torch.optim.SGD(D.parameters(), lr=1.0)
    before = D[1].weight.detach().clone()
    real, fake = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(2)), torch.zeros(4, 1, 4, 4)
    discriminator_phase(phases, D, None, opt, real, fake, DiscriminatorView(), torch.Generator().manual_seed(3), step)
    return D[1].weight.detach() - before


def test_lazy_r1_adds_gamma_k_w_to_the_gradient_every_k_steps():
    """R1 = ||w||^2 on a linear D, added as gamma/2 * k * R1 every k steps: gradient + gamma * k * w."""
    w = torch.randn(16, generator=torch.Generator().manual_seed(4))
    plain = Phases.from_config(TrainConfig(loss="ns"))
    r1 = Phases.from_config(TrainConfig(loss="ns", r1=0.5, r1_every=4))
    on = d_update_delta(r1, 8, w) - d_update_delta(plain, 8, w)
    assert torch.allclose(on.view(-1), -0.5 * 4 * w, atol=1e-5)
    off = d_update_delta(r1, 9, w) - d_update_delta(plain, 9, w)
    assert torch.allclose(off, torch.zeros_like(off), atol=1e-6)


def test_wgan_gp_phase_adds_the_penalty():
    w = torch.randn(16, generator=torch.Generator().manual_seed(5))
    plain = d_update_delta(Phases.from_config(TrainConfig(loss="wgan-gp", gp_weight=0.0)), 1, w)
    gp = d_update_delta(Phases.from_config(TrainConfig(loss="wgan-gp", gp_weight=10.0)), 1, w)
    # d/dw of 10 (||w|| - 1)^2 = 20 (||w|| - 1) w / ||w||
    expected = -20 * (w.norm() - 1) * w / w.norm()
    assert torch.allclose((gp - plain).view(-1), expected, atol=1e-4)


# --- spectral normalization and the minibatch-std layer --------------------------------------------------
def top_singular_values(D):
    out = []
    for m in D.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            out.append(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item())
    return out


def test_d_width_narrows_only_d_and_is_part_of_the_model_shape():
    cfg = resolve(TrainConfig(width=16, d_width=4, depth=0), 28, 1)
    conv_widths = [m.out_channels for m in build_discriminator(cfg).modules() if isinstance(m, nn.Conv2d)]
    assert conv_widths == [4, 8]  # as wide as a width-4 D: first conv d_width, then doubling
    assert resolve(TrainConfig(width=16), 28, 1).d_width == 16
    assert shape_differences(cfg.to_dict(), cfg.replace(d_width=8).to_dict()) == ["d_width: 4 != 8"]
    new = resolve(TrainConfig(width=16), 28, 1).to_dict()
    older = {k: v for k, v in new.items() if k != "d_width"}  # written before --d-width existed
    assert shape_differences(older, new) == []


def test_spectral_norm_bounds_every_layer_of_d():
    torch.manual_seed(0)
    cfgs = {sn: resolve(TrainConfig(width=8, depth=0, sn=sn), 28, 1) for sn in (False, True)}
    for sn, cfg in cfgs.items():
        D = build_discriminator(cfg)
        with torch.no_grad():  # blow the raw weights up: without SN the layers' norms explode
            for m in D.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    raw = m.parametrizations.weight.original if sn else m.weight
                    raw.mul_(200)
        D.train()
        for _ in range(30):  # power iteration: one step per training forward
            D(torch.randn(4, 1, 28, 28))
        sv = top_singular_values(D)
        assert len(sv) == 3  # 2 convolutions and the head at 28 px
        if sn:
            assert all(abs(s - 1) < 0.05 for s in sv), sv
        else:
            assert all(s > 5 for s in sv), sv


def test_minibatch_std_channel_is_zero_for_identical_samples_and_positive_otherwise():
    layer = MinibatchStdDev(group_size=4)
    same = torch.randn(1, 3, 5, 5).repeat(8, 1, 1, 1)
    varied = torch.randn(8, 3, 5, 5)
    out_same, out_varied = layer(same), layer(varied)
    assert out_same.shape == out_varied.shape == (8, 4, 5, 5)
    assert torch.equal(out_same[:, :3], same)
    assert out_same[:, 3].abs().max() < 1e-3
    assert out_varied[:, 3].min() > 0.3  # about the std of N(0, 1) features
    # D built with --mbstd has the layer and can tell a collapsed batch from a varied one
    D = Discriminator(28, 1, 8, norm="none", mbstd=True)
    assert any(isinstance(m, MinibatchStdDev) for m in D.modules())
    x = torch.randn(8, 1, 28, 28)
    mixed = torch.cat([x[:1].repeat(4, 1, 1, 1), x[4:]])
    assert not torch.allclose(D(x)[4:], D(mixed)[4:])  # same images 4..7, different batch-mates


def test_packed_discriminator_judges_groups_of_samples_jointly():
    D = Discriminator(28, 1, 8, norm="none", pack=4)
    assert D.body[0].in_channels == 4
    x = torch.randn(8, 1, 28, 28)
    out = D(x)
    assert out.shape == (2,)                       # one logit per group of 4
    changed = x.clone()
    changed[1] = torch.randn(1, 28, 28)            # a member of the first group
    out_changed = D(changed)
    assert out_changed[0] != out[0] and out_changed[1] == out[1]
    with pytest.raises(UserError, match="multiple of --pack 3"):
        validate(TrainConfig(batch=64, pack=3))
    with pytest.raises(UserError, match="--batch 16 must be a multiple of --pack 3"):  # the default batch too
        resolve(TrainConfig(pack=3), 28, 1)
    with pytest.raises(UserError, match="--pack"):
        validate(TrainConfig(arch="progressive", pack=2))


# --- instance noise --------------------------------------------------------------------------------------
def test_instance_noise_perturbs_d_inputs_with_the_given_std():
    x = torch.zeros(64, 1, 28, 28)
    noisy = DiscriminatorView(noise_std=0.5)(x, torch.Generator().manual_seed(0))
    assert noisy.std().item() == pytest.approx(0.5, rel=0.05)
    assert torch.equal(DiscriminatorView(noise_std=0.0)(x, None), x)


def test_instance_noise_anneals_to_zero_over_the_run(tiny_npz, tmp_path, monkeypatch):
    seen = []
    original = DiscriminatorView.__call__

    def spy(view, x, rng):
        seen.append(view.noise_std)
        return original(view, x, rng)

    monkeypatch.setattr(DiscriminatorView, "__call__", spy)
    train(tiny_config(tiny_npz, tmp_path / "run", kimg=0.32, instance_noise=0.5, log_every=0.16, sample_every=1,
                      checkpoint_every=1), progress=False)
    assert len(seen) == 3 * 20  # real and fake in the D phase, fake in the G phase, 20 steps
    assert seen[0] == pytest.approx(0.5)
    assert all(a >= b for a, b in zip(seen, seen[1:]))
    assert seen[-1] == pytest.approx(0.5 * (1 - 19 * 16 / 320))  # linear to 0 at the last image


# --- DiffAugment ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", aug.AUGMENTATIONS)
@pytest.mark.parametrize("channels", [1, 3])
def test_each_augmentation_changes_images_keeps_shape_and_passes_gradients(name, channels):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(8, channels, 28, 28, generator=g) * 2 - 1).requires_grad_(True)
    y = aug.augment(x, (name,), torch.Generator().manual_seed(1))
    assert y.shape == x.shape and y.dtype == x.dtype
    changed = (y - x).flatten(1).abs().amax(1) > 1e-4
    assert changed.float().mean() >= 0.75  # (translation by 0 pixels leaves an image alone)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # reproducible from the generator
    again = aug.augment(x.detach(), (name,), torch.Generator().manual_seed(1))
    assert torch.equal(again, y.detach())


def test_translation_moves_content_by_at_most_an_eighth():
    x = -torch.ones(32, 1, 28, 28)
    x[:, :, 14, 14] = 1.0
    y = aug.translation(x, torch.Generator().manual_seed(0))
    for img in y[:, 0]:
        ys, xs = (img == 1.0).nonzero(as_tuple=True)
        assert len(ys) == 1  # moved, not smeared
        assert abs(ys.item() - 14) <= 4 and abs(xs.item() - 14) <= 4
    moved = [(img == 1.0).nonzero()[0].tolist() != [14, 14] for img in y[:, 0]]
    assert sum(moved) > 20


def test_cutout_zeroes_a_square_of_half_the_size():
    x = torch.ones(512, 1, 28, 28)
    y = aug.cutout(x, torch.Generator().manual_seed(0))
    zeroed = (y == 0).flatten(1).sum(1)
    assert ((zeroed > 0) & (zeroed <= 14 * 14)).all()
    # the square's corner is uniform in [-7, 21): fully inside with probability (15/28)^2 = 0.29
    assert 0.22 < (zeroed == 14 * 14).float().mean() < 0.36
    assert set(y.unique().tolist()) <= {0.0, 1.0}


def test_color_changes_brightness_saturation_contrast_per_image():
    x = torch.rand(16, 3, 8, 8) * 2 - 1
    y = aug.color(x, torch.Generator().manual_seed(0))
    shift = (y.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3)))
    assert shift.std() > 0.05  # each image its own brightness
    assert shift.abs().max() <= 0.5 + 1e-5


def test_unknown_augmentation_is_a_user_error():
    with pytest.raises(UserError, match="unknown augmentation"):
        aug.parse_policy("translation,flip")
    assert aug.parse_policy(" translation , color ") == ("translation", "color")
    assert aug.parse_policy("translation+color") == ("translation", "color")  # fits a sweep grid value
    assert aug.parse_policy("none") == ()


def test_augment_is_applied_to_real_and_fake_in_both_phases(tiny_npz, tmp_path, monkeypatch):
    calls, phase = [], {}
    original_augment = step_module.augment
    original_d, original_g = trainer_module.discriminator_phase, trainer_module.generator_phase

    def spy_augment(x, policy, generator=None):
        fake = phase.get("fake")  # bf16 under --amp, and D's input is then its float32 copy
        who = "real" if x is phase.get("real") else "fake" if fake is not None and torch.equal(x, fake.float()) else "other"
        calls.append((phase["name"], who, tuple(policy), tuple(x.shape)))
        out = original_augment(x, policy, generator)
        assert not torch.equal(out, x)
        return out

    def spy_d(phases, D, G, opt_D, real, fake, *a, **kw):
        phase.update(name="D", real=real, fake=fake)
        return original_d(phases, D, G, opt_D, real, fake, *a, **kw)

    def spy_g(phases, D, G, opt_G, params, fake, *a, **kw):
        phase.update(name="G", real=None, fake=fake)
        return original_g(phases, D, G, opt_G, params, fake, *a, **kw)

    monkeypatch.setattr(step_module, "augment", spy_augment)
    monkeypatch.setattr(trainer_module, "discriminator_phase", spy_d)
    monkeypatch.setattr(trainer_module, "generator_phase", spy_g)
    train(tiny_config(tiny_npz, tmp_path / "run", kimg=0.064, augment="translation,cutout,color"), progress=False)
    policy = ("translation", "cutout", "color")
    assert calls == [("D", "real", policy, (16, 1, 28, 28)), ("D", "fake", policy, (16, 1, 28, 28)),
                     ("G", "fake", policy, (16, 1, 28, 28))] * 4


# --- --d-steps and the balance policy ------------------------------------------------------------------
def test_d_steps_shows_three_real_batches_and_makes_three_d_updates_per_g_step(tiny_npz, tmp_path, monkeypatch):
    d_updates = []
    original_d = trainer_module.discriminator_phase

    def spy_d(*a, **kw):
        d_updates.append(kw.get("update", True))
        return original_d(*a, **kw)

    monkeypatch.setattr(trainer_module, "discriminator_phase", spy_d)
    result = train(tiny_config(tiny_npz, tmp_path / "run", kimg=0.288, d_steps=3), progress=False)
    assert result.step == 6 and result.images_seen == 6 * 3 * 16
    assert d_updates == [True] * 18
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt["state"]["batches_drawn"] == 18
    opt_d_steps = {float(s["step"]) for s in ckpt["opt_D"]["state"].values()}
    opt_g_steps = {float(s["step"]) for s in ckpt["opt_G"]["state"].values()}
    assert opt_d_steps == {18.0} and opt_g_steps == {6.0}


def test_d_steps_draws_distinct_real_batches():
    t = tiny_trainer(d_steps=3)
    batches = ListBatches()
    t.train_step(batches)
    t.train_step(batches)
    assert batches.calls == [0, 1, 2, 3, 4, 5]


def test_balance_policy_skips_d_while_it_wins_and_resumes_when_it_recovers():
    low, high = BALANCE["ns"]
    p = BalancePolicy(low, high)
    assert p.d_updates(1) == 1
    for step in range(40):
        p.observe(0.01, step)
    assert p.skipping and [e["kind"] for e in p.events] == ["balance"]
    assert "skipping D" in p.events[0]["message"] and p.events[0]["evidence"]["threshold"] == low
    assert [p.d_updates(2) for _ in range(3)] == [0, 0, 0]
    for step in range(40, 80):
        p.observe(1.0, step)
        if not p.skipping:
            break
    assert not p.skipping and "resume" in p.events[-1]["message"]
    assert p.d_updates(2) == 2
    assert p.take_interval_counts() == {"d_skipped": 3, "d_extra": 0}
    assert p.take_interval_counts() == {"d_skipped": 0, "d_extra": 0}


def test_balance_policy_gives_a_weak_d_extra_steps():
    p = BalancePolicy(*BALANCE["hinge"])
    for step in range(30):
        p.observe(BALANCE["hinge"][1] + 0.5, step)
    assert p.boosting and not p.skipping
    assert p.d_updates(1) == 2 and p.d_updates(3) == 4
    assert p.take_interval_counts() == {"d_skipped": 0, "d_extra": 2}
    p.observe(float("nan"), 31)  # a non-finite loss is the guard's business, not the balance's
    assert p.boosting
    for step in range(32, 80):
        p.observe(1.0, step)
    assert not p.boosting and p.d_updates(1) == 1


def test_balance_policy_state_round_trips():
    p = BalancePolicy(*BALANCE["lsgan"])
    for step in range(20):
        p.observe(0.001, step)
    q = BalancePolicy(*BALANCE["lsgan"])
    q.load_state_dict(json.loads(json.dumps(p.state_dict())))
    assert q.skipping and q.loss_ema == p.loss_ema


def test_balance_skips_d_in_a_run_where_d_wins(tiny_npz, tmp_path):
    """G barely learns (g_lr 1e-6), D learns fast: D's raw loss is ~0.03 by step 8, its running mean (0.9
    smoothing, from ~1.4) crosses 0.1 near step 28, and from then on D's updates are skipped."""
    run = tmp_path / "run"
    train(tiny_config(tiny_npz, run, kimg=0.64, g_lr=1e-6, d_lr=5e-3, balance=True, log_every=0.064,
                      sample_every=1, checkpoint_every=1), progress=False)
    recs = records(run)
    assert sum(r["balance"]["d_skipped"] for r in recs) > 0
    balance_events = events(run, "balance")
    assert balance_events and "skipping D" in balance_events[0]["message"]
    assert balance_events[0]["evidence"]["loss_d"] < BALANCE["ns"][0]
    # while skipping, D is measured but not updated: its gradient norm is 0 over a fully skipped interval
    assert recs[-1]["balance"]["d_skipped"] == 4 and recs[-1]["d_grad"] == 0
    # the skipped steps still show real images (D's loss is measured on them), so kimg keeps its meaning
    assert recs[-1]["kimg"] == 0.64


def test_without_balance_the_same_run_never_skips(tiny_npz, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(tiny_npz, run, kimg=0.32, g_lr=1e-6, d_lr=5e-3, log_every=0.064, sample_every=1,
                      checkpoint_every=1), progress=False)
    assert all("balance" not in r for r in records(run)) and not events(run, "balance")
    assert all(r["d_grad"] > 0 for r in records(run))


# --- the divergence guard --------------------------------------------------------------------------------
def nan_generator_loss(monkeypatch, from_call, until_call=None):
    count = {"n": 0}

    def patched(spec, fake, real):
        count["n"] += 1
        out = spec.g_loss(fake, real)
        if count["n"] >= from_call and (until_call is None or count["n"] < until_call):
            out = out * float("nan")
        return out

    wrap_losses(monkeypatch, g_loss=patched)
    return count


def test_a_nan_rolls_back_halves_the_learning_rates_and_training_continues(tiny_npz, tmp_path, monkeypatch):
    nan_generator_loss(monkeypatch, from_call=11, until_call=12)  # step 10 (0-based) only
    run = tmp_path / "run"
    result = train(tiny_config(tiny_npz, run, kimg=0.32, g_lr=2e-4, d_lr=4e-4, log_every=0.064, sample_every=1),
                   progress=False)
    assert result.step == 20 and not result.interrupted
    div = events(run, "divergence")
    assert len(div) == 1 and div[0]["severity"] == "error"
    assert div[0]["evidence"]["step"] == 11 and "loss_g is nan" in div[0]["evidence"]["reason"]
    assert "rolled back to step 8" in div[0]["message"]  # checkpoints every 4 steps
    recs = records(run)
    assert recs[0]["lr_g"] == 2e-4 and recs[0]["lr_d"] == 4e-4
    assert recs[-1]["lr_g"] == 1e-4 and recs[-1]["lr_d"] == 2e-4
    assert all(math.isfinite(r["loss_g"]) and math.isfinite(r["loss_d"]) for r in recs)
    ckpt = load_checkpoint(result.checkpoint)
    adjustments = ckpt["state"]["adjustments"]
    assert adjustments["g_lr_scale"] == adjustments["d_lr_scale"] == 0.5 and ckpt["state"]["guard"]["rollbacks"] == 1
    assert [h["by"] for h in adjustments["history"]] == ["rollback"]
    assert json.loads((run / "adjustments.json").read_text()) == adjustments
    assert all(torch.isfinite(v).all() for v in ckpt["G"].values() if v.is_floating_point())


def test_rollback_leaves_no_duplicate_steps_in_the_metrics(tiny_npz, tmp_path, monkeypatch):
    nan_generator_loss(monkeypatch, from_call=11, until_call=12)
    run = tmp_path / "run"  # a record every 2 steps: step 10 is logged, then replayed after the rollback to 8
    train(tiny_config(tiny_npz, run, kimg=0.32, sample_every=1), progress=False)
    steps = [r["step"] for r in records(run)]
    assert steps == sorted(set(steps))


def test_persistent_nan_gives_up_after_three_rollbacks_with_checkpoints_intact(tiny_npz, tmp_path, monkeypatch):
    run = tmp_path / "run"
    count = nan_generator_loss(monkeypatch, from_call=7)
    with pytest.raises(UserError, match=r"diverged \(loss_g is nan\) 3 times"):
        train(tiny_config(tiny_npz, run, kimg=0.32, sample_every=1), progress=False)
    assert count["n"] == 7 + 3  # step 6 diverges, then each of 3 rollbacks to step 4 diverges again at once
    ckpts = list_step_checkpoints(run / "checkpoints")
    assert [p.name for p in ckpts] == ["step-00000000.pt", "step-00000004.pt"]
    for p in ckpts:
        ckpt = load_checkpoint(p)  # verifies the checksum
        assert all(torch.isfinite(v).all() for v in ckpt["G"].values() if v.is_floating_point())


def test_guard_spots_an_exploding_gradient_after_warmup():
    g = DivergenceGuard(warmup=10)
    for _ in range(20):
        assert g.check({"loss_d": 1.0}, {"d_grad": 1.0}) is None
    reason = g.check({"loss_d": 1.0}, {"d_grad": 500.0})
    assert reason and "d_grad exploded" in reason
    assert "inf" in DivergenceGuard().check({"loss_d": float("inf")}, {})


def test_guard_does_not_call_a_resumed_d_an_explosion_after_skipped_updates():
    """While the balance policy skips D, its gradient norm is 0; that must not drag the running mean to 0."""
    g = DivergenceGuard(warmup=10)
    for _ in range(100):
        assert g.check({"loss_d": 1.0}, {"d_grad": 1.0, "g_grad": 1.0}) is None
    for _ in range(2000):
        assert g.check({"loss_d": 0.05}, {"d_grad": 0.0, "g_grad": 1.0}) is None
    assert g.check({"loss_d": 0.3}, {"d_grad": 1.5, "g_grad": 1.0}) is None


# --- the EMA of G ----------------------------------------------------------------------------------------
def test_ema_update_is_a_lerp_and_buffers_are_copied():
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = make_ema(G)
    start = [p.clone() for p in ema.parameters()]
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
    G(torch.randn(8, 3))  # moves the batch-norm statistics
    update_ema(ema, G, 0.9)
    for e, s, p in zip(ema.parameters(), start, G.parameters()):
        assert torch.allclose(e, 0.9 * s + 0.1 * p, atol=1e-6)
    for be, b in zip(ema.buffers(), G.buffers()):
        assert torch.equal(be, b)
    assert not any(p.requires_grad for p in ema.parameters())


def test_ema_decay_warms_up_then_stays_at_the_given_value():
    assert ema_decay(0.999, 0) == 0.1              # the first average is mostly the trained weights
    assert ema_decay(0.999, 90) == 91 / 100
    assert ema_decay(0.999, 10_000) == 0.999
    assert ema_decay(0.5, 0) == 0.1 and ema_decay(0.5, 20) == 0.5
    # why raising the default from 0.999 to 0.99975 leaves runs under 8,991 steps unchanged (defaults_sweep.md)
    assert all(ema_decay(0.99975, s) == ema_decay(0.999, s) for s in range(8991))
    assert ema_decay(0.99975, 8991) > ema_decay(0.999, 8991)


def test_trainer_ema_after_one_step_is_the_hand_lerp_and_sampling_uses_it():
    t = tiny_trainer(ema=0.9)
    before = [p.detach().clone() for p in t.G.parameters()]
    assert all(torch.equal(e, b) for e, b in zip(t.G_ema.parameters(), before))
    t.train_step(ListBatches())
    moved = False
    for e, b, p in zip(t.G_ema.parameters(), before, t.G.parameters()):
        assert torch.allclose(e, 0.1 * b + 0.9 * p.detach(), atol=1e-7)  # step 0: warm-up decay 0.1
        moved |= not torch.equal(p, b)
    assert moved
    assert t.sampling_generator() is t.G_ema
    t.G_ema.eval()
    assert torch.allclose(t.fixed_samples(), t.G_ema(t.fixed_z))
    plain = tiny_trainer(ema=0.0)
    assert plain.G_ema is None and plain.sampling_generator() is plain.G


class TinyBNGenerator(nn.Sequential):
    z_dim = 3

    def __init__(self):
        super().__init__(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2), nn.BatchNorm1d(2))


def test_standing_statistics_are_the_average_batch_statistics_of_the_given_weights():
    torch.manual_seed(0)
    G = TinyBNGenerator().eval()
    bn = G[1]
    with torch.no_grad():
        bn.running_mean.fill_(100.0)  # statistics that do not belong to these weights
        bn.running_var.fill_(1e-3)
    params = [p.clone() for p in G.parameters()]
    standing_statistics(G, batch=8, samples=64, seed=5)
    # by hand: the same 8 batches of 8 latents; mean of the batch means and of the unbiased batch variances
    rng = torch.Generator().manual_seed(5)
    with torch.no_grad():
        pre = [G[0](torch.randn(8, 3, generator=rng)) for _ in range(8)]
    assert torch.allclose(bn.running_mean, torch.stack([h.mean(0) for h in pre]).mean(0), atol=1e-6)
    assert torch.allclose(bn.running_var, torch.stack([h.var(0) for h in pre]).mean(0), atol=1e-6)
    assert not G.training and bn.momentum == 0.1  # mode and momentum as they were
    assert all(torch.equal(p, q) for p, q in zip(G.parameters(), params))
    second = standing_statistics(copy.deepcopy(G), batch=8, samples=64, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(G.buffers(), second.buffers()))  # a fixed seed: reproducible


def test_sampling_from_a_run_uses_the_ema_weights_with_the_configured_statistics(tiny_npz, tmp_path):
    from gansmith.generate import generate_images, load_generator
    result = train(tiny_config(tiny_npz, tmp_path / "run", kimg=0.128, ema=0.9), progress=False)
    ckpt = load_checkpoint(result.checkpoint)
    assert any(not torch.equal(ckpt["G"][k], ckpt["G_ema"][k]) for k in ckpt["G"] if ckpt["G"][k].is_floating_point())
    copied, _ = load_generator(tmp_path / "run", standing=False)
    assert all(torch.equal(v, ckpt["G_ema"][k]) for k, v in copied.state_dict().items())
    G, cfg = load_generator(tmp_path / "run")  # 28 px: standing statistics by default
    assert cfg.standing_stats
    params = dict(G.named_parameters())
    assert all(torch.equal(params[k], ckpt["G_ema"][k]) for k in params)
    expected = standing_statistics(copy.deepcopy(copied), cfg.batch)
    stats = [k for k in ckpt["G_ema"] if k.endswith("running_mean")]
    assert stats and all(torch.equal(G.state_dict()[k], expected.state_dict()[k]) for k in stats)
    assert any(not torch.equal(G.state_dict()[k], ckpt["G_ema"][k]) for k in stats)
    assert not G.training
    raw, _ = load_generator(tmp_path / "run", ema=False)
    assert all(torch.equal(v, ckpt["G"][k]) for k, v in raw.state_dict().items())  # G's own: as trained
    assert (generate_images(G, 4, seed=1) != generate_images(raw, 4, seed=1)).any()
    off = train(tiny_config(tiny_npz, tmp_path / "off", kimg=0.032, ema=0.9, standing_stats=False), progress=False)
    G_off, _ = load_generator(tmp_path / "off")
    assert all(torch.equal(v, load_checkpoint(off.checkpoint)["G_ema"][k]) for k, v in G_off.state_dict().items())


def test_a_run_saved_before_standing_statistics_keeps_the_copied_ones():
    assert TrainConfig.from_saved({"arch": "dcgan", "res": 28, "channels": 1, "ema": 0.999}).standing_stats is False


def test_evaluation_during_training_leaves_the_trainers_ema_untouched():
    t = tiny_trainer(ema=0.9)
    assert t.cfg.standing_stats
    t.train_step(ListBatches())
    before = copy.deepcopy(t.G_ema.state_dict())
    G = t.evaluation_generator()
    assert G is not t.G_ema
    assert all(torch.equal(v, before[k]) for k, v in t.G_ema.state_dict().items())
    assert any(not torch.equal(b, c) for b, c in zip(G.buffers(), t.G_ema.buffers()))
    copied = tiny_trainer(ema=0.9, standing_stats=False)
    copied.train_step(ListBatches())
    assert all(torch.equal(b, c) for b, c in zip(copied.evaluation_generator().buffers(), copied.G_ema.buffers()))
    plain = tiny_trainer(ema=0.0)
    assert all(torch.equal(a, b) for a, b in zip(plain.evaluation_generator().state_dict().values(),
                                                 plain.G.state_dict().values()))


# --- options reach the trainer: from the CLI flags, and through the API into the step ---------------------
def test_cli_flags_reach_the_config(tiny_npz, tmp_path, run_cli):
    run = tmp_path / "run"
    code, out, err = run_cli("train", tiny_npz, "--out", run, "--kimg", "0.032", *CLI_TINY,
                             "--loss", "lsgan", "--sn", "--mbstd", "--r1", "0.5", "--r1-every", "4",
                             "--label-smooth", "0.1", "--instance-noise", "0.2", "--augment", "translation,color",
                             "--d-steps", "2", "--balance", "--auto-fix", "--ema", "0.99",
                             "--g-lr", "1e-4", "--d-lr", "4e-4", "--gp-weight", "5", "--pack", "2",
                             "--no-standing-stats")
    assert code == 0, err
    cfg = json.loads((run / "config.json").read_text())["config"]
    assert cfg | dict(loss="lsgan", sn=True, mbstd=True, r1=0.5, r1_every=4, label_smooth=0.1, instance_noise=0.2,
                      augment="translation,color", d_steps=2, balance=True, auto_fix=True, ema=0.99,
                      g_lr=1e-4, d_lr=4e-4, gp_weight=5.0, d_norm="none", pack=2, standing_stats=False) == cfg
    ckpt = load_checkpoint(list_step_checkpoints(run / "checkpoints")[-1])
    assert ckpt["G_ema"] is not None
    assert any("parametrizations" in k for k in ckpt["D"])  # spectral norm
    assert ckpt["D"]["body.0.parametrizations.weight.original"].shape[1] == 2 * cfg["channels"]  # packed pairs
    code, out, err = run_cli("train", tiny_npz, "--out", tmp_path / "bad", "--loss", "wgan-gp", "--balance",
                             *CLI_TINY)
    assert code != 0 and "--balance does not apply to wgan-gp" in err


@pytest.mark.parametrize("kind", losses.LOSSES.names())
def test_each_loss_is_the_one_training_uses(kind, monkeypatch):
    used = []
    wrap_losses(monkeypatch, lambda spec, *a: used.append(("D", spec.name)) or spec.d_loss(*a),
                lambda spec, fake, real: used.append(("G", spec.name, real is not None)) or spec.g_loss(fake, real))
    t = tiny_trainer(loss=kind)
    stats = t.train_step(ListBatches())
    assert used == [("D", kind), ("G", kind, losses.LOSSES.get(kind).g_needs_real)]
    assert torch.isfinite(stats).all()


def test_penalties_and_smoothing_reach_the_step(monkeypatch):
    calls = {"r1": 0, "gp": 0, "labels": []}
    r1, gp = regularizers.r1_penalty, regularizers.gradient_penalty
    monkeypatch.setattr(regularizers, "r1_penalty", lambda *a: calls.__setitem__("r1", calls["r1"] + 1) or r1(*a))
    monkeypatch.setattr(regularizers, "gradient_penalty", lambda *a: calls.__setitem__("gp", calls["gp"] + 1) or gp(*a))
    wrap_losses(monkeypatch, lambda spec, r, f, label: calls["labels"].append(label) or spec.d_loss(r, f, label))
    t = tiny_trainer(r1=1.0, r1_every=2, label_smooth=0.2)
    assert t.cfg.d_norm == "none"  # batch norm would mix the per-sample gradients
    for _ in range(6):
        t.train_step(ListBatches())
    assert calls["r1"] == 3 and calls["gp"] == 0  # steps 0, 2, 4
    assert calls["labels"] == [pytest.approx(0.8)] * 6
    t = tiny_trainer(loss="wgan-gp")
    for _ in range(2):
        t.train_step(ListBatches())
    assert calls["gp"] == 2


def test_label_smoothing_is_refused_where_it_cannot_act(tiny_npz, tmp_path, run_cli):
    for loss in ("hinge", "wgan-gp"):
        code, out, err = run_cli("train", tiny_npz, "--out", tmp_path / loss, "--loss", loss, "--label-smooth", "0.1")
        assert code == 2 and "--label-smooth applies to the ns and lsgan losses" in err


@pytest.mark.parametrize("kind, expected", [("none", [1, 1, 1, 1, 1]), ("linear", [1, 0.5, 0.25, 0.125, 0]),
                                            ("cosine", [1, 0.5, 0.14644660940672627, 0.03806023374435663, 0]),
                                            ("late", [1, 1, 1, 0.5, 0])])
def test_lr_decay_factor(kind, expected):
    assert [decay_factor(kind, p) for p in (0, 0.5, 0.75, 0.875, 1)] == pytest.approx(expected)


def test_lr_decay_lowers_both_learning_rates_along_the_run_and_resumes_on_the_same_curve(tiny_npz, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config(tiny_npz, run, kimg=0.16, lr_decay="linear", g_lr=2e-4, d_lr=4e-4, log_every=0.032)
    train(cfg, progress=False)
    lr_g = [r["lr_g"] for r in records(run)]
    assert lr_g == sorted(lr_g, reverse=True) and lr_g[-1] < 0.2 * 2e-4
    ckpt = load_checkpoint(list_step_checkpoints(run / "checkpoints")[-1])
    # the last of 10 steps ran at progress 9/10
    assert ckpt["opt_G"]["param_groups"][0]["lr"] == pytest.approx(2e-4 * 0.1)
    assert ckpt["opt_D"]["param_groups"][0]["lr"] == pytest.approx(4e-4 * 0.1)
    # interrupted after 4 steps (as by Ctrl-C), then resumed: the same curve, so the same weights
    calls = []

    class StopAfterFourSteps(loop_module.GracefulStop):
        @property
        def requested(self):
            calls.append(1)
            return len(calls) > 4

        @requested.setter
        def requested(self, value):
            pass

    interrupted = tmp_path / "interrupted"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop_module, "GracefulStop", StopAfterFourSteps)
        assert train(cfg.replace(out=str(interrupted)), progress=False).step == 4
    train(cfg.replace(out=str(interrupted)), resume=True, progress=False)
    last = load_checkpoint(list_step_checkpoints(interrupted / "checkpoints")[-1])
    assert all(torch.equal(last["G"][k], ckpt["G"][k]) for k in ckpt["G"])
