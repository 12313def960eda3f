"""Training end to end on tiny models: the loop, the run folder, exact resume, the frozen-D G phase."""
import json

import numpy as np
import pytest
import torch

from gansmith.errors import UserError
from gansmith import system
from gansmith.training import TrainConfig, train
from gansmith.training.checkpoint import list_step_checkpoints, load_checkpoint
from gansmith.training.run import RunFolder
from gansmith.training.config import resolve, shape_differences, validate
from gansmith.training.step import DiscriminatorView, Phases, discriminator_phase, generator_phase
from gansmith.losses import LOSSES
from gansmith.models.dcgan import Discriminator, Generator
from conftest import tiny_config


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_writes_a_complete_run_folder(tiny_npz, tmp_path):
    run = tmp_path / "run"
    result = train(tiny_config(tiny_npz, run, kimg=0.32, keep=2, report=True), progress=False)
    assert result.step == 20 and result.images_seen == 320 and not result.interrupted

    config = json.loads((run / "config.json").read_text())
    assert config["config"]["res"] == 28 and config["config"]["channels"] == 1
    assert config["data"]["n"] == 48 and config["versions"]["torch"] == torch.__version__

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    for key in ("kimg", "seconds", "loss_g", "loss_d", "d_real", "d_fake", "lr_g", "lr_d", "img_per_s"):
        assert all(np.isfinite(r[key]) for r in records), key
    assert records[0]["loss_d"] != records[-1]["loss_d"]  # losses move

    grids = sorted((run / "samples").glob("grid-*.png"))
    assert len(grids) == 5 and (run / "samples" / "latest.png").exists()
    assert [p.name for p in list_step_checkpoints(run / "checkpoints")] == ["step-00000016.pt", "step-00000020.pt"]
    assert all(k in records[-1] for k in ("d_acc", "d_grad", "g_grad", "div_fake", "div_real", "sample_change"))
    assert any((run / "events").iterdir())
    assert "<img" in (run / "report.html").read_text()


def test_samples_change_while_training(tiny_npz, tmp_path):
    from PIL import Image
    run = tmp_path / "run"
    train(tiny_config(tiny_npz, run, kimg=0.32), progress=False)
    grids = sorted((run / "samples").glob("grid-*.png"))
    first, last = (np.asarray(Image.open(p), dtype=float) for p in (grids[0], grids[-1]))
    assert np.abs(first - last).mean() > 1.0


def test_resume_is_bit_exact(tiny_npz, tmp_path):
    """2N steps in one go == N steps, then resume, then N steps: same final weights and optimizer state."""
    straight = train(tiny_config(tiny_npz, tmp_path / "a", kimg=0.256, ema=0.9), progress=False)
    train(tiny_config(tiny_npz, tmp_path / "b", kimg=0.128, ema=0.9), progress=False)
    resumed = train(tiny_config(tiny_npz, tmp_path / "b", kimg=0.256, ema=0.9), resume=True, progress=False)
    assert straight.step == resumed.step == 16
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    for key in ("G", "D", "G_ema"):
        assert states_equal(a[key], b[key]), key
    for key in ("opt_G", "opt_D"):
        for pa, pb in zip(a[key]["state"].values(), b[key]["state"].values()):
            assert states_equal(pa, pb)
    assert torch.equal(a["rng"]["train"], b["rng"]["train"])
    # the metrics of the resumed run continue without duplicated steps
    steps = [json.loads(l)["step"] for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))


def test_generator_phase_leaves_discriminator_untouched():
    torch.manual_seed(0)
    G, D = Generator(28, 1, 16, 8), Discriminator(28, 1, 8)
    opt_G, opt_D = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    real, fake = torch.rand(8, 1, 28, 28) * 2 - 1, G(torch.randn(8, 16))
    phases, view, rng = Phases(LOSSES.get("ns")), DiscriminatorView(), torch.Generator()
    discriminator_phase(phases, D, G, opt_D, real, fake.detach(), view, rng, step=1)
    d_weights = {k: v.clone() for k, v in D.state_dict().items() if "running" not in k and "num_batches" not in k}
    d_grads = [p.grad.clone() for p in D.parameters()]
    g_before = [p.clone() for p in G.parameters()]
    generator_phase(phases, D, G, opt_G, list(G.parameters()), fake, real, view, rng, step=1)
    assert all(torch.equal(p.grad, g) for p, g in zip(D.parameters(), d_grads)), "G's loss leaked gradients into D"
    assert all(torch.equal(D.state_dict()[k], v) for k, v in d_weights.items())
    assert all(p.requires_grad for p in D.parameters()), "D must be unfrozen again for its next phase"
    assert any(not torch.equal(p, q) for p, q in zip(G.parameters(), g_before)), "G did not learn"


def test_discriminator_learns_to_separate(tiny_npz, tmp_path):
    """Over a short run D's probability gap between real and fake opens up from chance (0.5/0.5)."""
    run = tmp_path / "run"
    train(tiny_config(tiny_npz, run, kimg=0.32, g_lr=1e-5, d_lr=2e-3), progress=False)
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["d_real"] - last["d_fake"] > 0.2


def test_same_seed_same_run(tiny_npz, tmp_path):
    a = train(tiny_config(tiny_npz, tmp_path / "a", kimg=0.064, seed=3), progress=False)
    b = train(tiny_config(tiny_npz, tmp_path / "b", kimg=0.064, seed=3), progress=False)
    c = train(tiny_config(tiny_npz, tmp_path / "c", kimg=0.064, seed=4), progress=False)
    ga, gb, gc = (load_checkpoint(r.checkpoint)["G"] for r in (a, b, c))
    assert states_equal(ga, gb) and not states_equal(ga, gc)


def test_minutes_budget_stops_training(tiny_npz, tmp_path):
    result = train(tiny_config(tiny_npz, tmp_path / "run", minutes=0.02), progress=False)
    assert 0 < result.step and not result.interrupted


def test_amp_is_a_warned_no_op_on_a_cpu_without_bf16(tiny_npz, tmp_path, monkeypatch):
    monkeypatch.setattr(system, "cpu_has_bf16", lambda: False)
    with pytest.warns(UserWarning, match="--amp has no effect on this cpu"):
        a = train(tiny_config(tiny_npz, tmp_path / "a", kimg=0.032, amp=True), progress=False)
    b = train(tiny_config(tiny_npz, tmp_path / "b", kimg=0.032), progress=False)
    assert states_equal(load_checkpoint(a.checkpoint)["G"], load_checkpoint(b.checkpoint)["G"])


def test_amp_trains_in_bf16_on_a_cpu_with_bf16(tiny_npz, tmp_path, monkeypatch):
    """Forward passes run in bf16 (autocast works on any CPU; the capability check only decides whether it is
    worth it), so the weights differ from a float32 run's, and stay finite and float32."""
    monkeypatch.setattr(system, "cpu_has_bf16", lambda: True)
    seen = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: seen.append(o.dtype) if isinstance(m, torch.nn.ConvTranspose2d) else None)
    try:
        a = train(tiny_config(tiny_npz, tmp_path / "a", kimg=0.032, amp=True), progress=False)
    finally:
        hook.remove()
    b = train(tiny_config(tiny_npz, tmp_path / "b", kimg=0.032, amp=False), progress=False)
    ga, gb = (load_checkpoint(r.checkpoint)["G"] for r in (a, b))
    assert torch.bfloat16 in seen
    assert not states_equal(ga, gb)
    assert all(v.dtype != torch.bfloat16 and torch.isfinite(v.float()).all() for v in ga.values())


@pytest.mark.parametrize("has_bf16", [False, True])
def test_amp_is_on_by_default_exactly_on_cpus_with_bf16(tiny_npz, tmp_path, monkeypatch, has_bf16):
    """Unset, --amp resolves from the CPU, the run's config records what it resolved to (so a resume on another
    machine keeps it), and the default run is the same run as one with that value given explicitly (float32
    and bf16 runs differ: test_amp_trains_in_bf16_on_a_cpu_with_bf16)."""
    monkeypatch.setattr(system, "cpu_has_bf16", lambda: has_bf16)
    a = train(tiny_config(tiny_npz, tmp_path / "a", kimg=0.032), progress=False)
    b = train(tiny_config(tiny_npz, tmp_path / "b", kimg=0.032, amp=has_bf16), progress=False)
    assert RunFolder(a.run).read_config()["config"]["amp"] is has_bf16
    assert states_equal(load_checkpoint(a.checkpoint)["G"], load_checkpoint(b.checkpoint)["G"])


def test_depth_adds_a_same_size_convolution_at_every_hidden_scale():
    """--depth 1: one more 3x3 stride-1 conv at 7x7 and 14x14 in G and in D; depth 0 keeps the classic layout
    (same state-dict keys as before --depth existed); the depth is part of the model shape, and a config saved
    before --depth existed means depth 0 whatever the default is now."""
    def convs(net, x):
        shapes = []
        hooks = [m.register_forward_hook(lambda m, i, o: shapes.append((m.kernel_size[0], o.shape[-1])))
                 for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
        net(x)
        [h.remove() for h in hooks]
        return shapes

    z, x = torch.randn(2, 16), torch.randn(2, 1, 28, 28)
    assert convs(Generator(28, 1, 16, 8), z) == [(4, 14), (4, 28)]
    assert convs(Generator(28, 1, 16, 8, depth=1), z) == [(3, 7), (4, 14), (3, 14), (4, 28)]
    assert convs(Discriminator(28, 1, 8), x) == [(4, 14), (4, 7)]
    assert convs(Discriminator(28, 1, 8, depth=2), x) == [(4, 14), (3, 14), (3, 14), (4, 7), (3, 7), (3, 7)]
    assert Discriminator(28, 1, 8).state_dict().keys() == Discriminator(28, 1, 8, depth=0).state_dict().keys()
    cfg = resolve(TrainConfig(width=8, depth=1), 28, 1)
    assert shape_differences(cfg.to_dict(), cfg.replace(depth=0).to_dict()) == ["depth: 1 != 0"]
    older = {k: v for k, v in cfg.to_dict().items() if k != "depth"}
    assert TrainConfig.from_saved(older).depth == 0 and shape_differences(older, cfg.replace(depth=0).to_dict()) == []
    with pytest.raises(UserError, match="--depth"):
        validate(TrainConfig(depth=-1))
    with pytest.raises(UserError, match="--depth"):
        validate(TrainConfig(arch="progressive", depth=1))
