"""Progressive growing: the schedule, shapes at every stage, seamless fade-in, exact resume mid-fade."""
import numpy as np
import pytest
import torch

from gansmith.models.progressive import ProgressiveDiscriminator, ProgressiveGenerator, schedule, stage_count
from gansmith.training import TrainConfig, train
from gansmith.training.checkpoint import load_checkpoint
from gansmith.training.config import resolve
from conftest import tiny_config


def test_schedule_stable_then_fade_then_stable():
    phase = 1.0  # kimg
    assert schedule(0, phase, 4) == (0, 1.0) and schedule(999, phase, 4) == (0, 1.0)
    assert schedule(1000, phase, 4) == (1, 0.0)
    assert schedule(1500, phase, 4) == (1, 0.5)
    assert schedule(2500, phase, 4) == (1, 1.0)
    assert schedule(3250, phase, 4) == (2, 0.25)
    assert schedule(10**9, phase, 4) == (3, 1.0)


@pytest.mark.parametrize("res, channels", [(28, 1), (32, 3), (64, 3)])
def test_every_stage_produces_and_judges_final_resolution_images(res, channels):
    G, D = ProgressiveGenerator(res, channels, 16, 8), ProgressiveDiscriminator(res, channels, 8)
    for stage in range(stage_count(res)):
        for alpha in (0.0, 0.5, 1.0):
            G.set_growth(stage, alpha)
            D.set_growth(stage, alpha)
            x = G(torch.randn(4, 16))
            assert x.shape == (4, channels, res, res)
            # the image holds only the current resolution's detail (nearest-upscaled)
            cur = G.stage_res(stage)
            blocks = x.unfold(2, res // cur, res // cur).unfold(3, res // cur, res // cur)
            assert torch.allclose(blocks, blocks[..., :1, :1].expand_as(blocks))
            assert D(x).shape == (4,)


def test_fade_in_starts_exactly_where_the_previous_stage_was():
    torch.manual_seed(0)
    G, D = ProgressiveGenerator(32, 3, 16, 8), ProgressiveDiscriminator(32, 3, 8)
    z, img = torch.randn(4, 16), torch.rand(4, 3, 32, 32) * 2 - 1
    for stage in (1, 2, 3):
        G.set_growth(stage - 1, 1.0)
        D.set_growth(stage - 1, 1.0)
        before_g, before_d = G(z), D(img)
        G.set_growth(stage, 0.0)
        D.set_growth(stage, 0.0)
        assert torch.allclose(G(z), before_g, atol=1e-6)
        assert torch.allclose(D(img), before_d, atol=1e-5)
        G.set_growth(stage, 0.5)
        assert not torch.allclose(G(z), before_g, atol=1e-4)  # the new block does take part


def config(data, out, **kw):
    return tiny_config(data, out, arch="progressive", phase_kimg=0.04, **kw)


def test_resume_mid_fade_is_bit_exact(tiny_npz, tmp_path):
    straight = train(config(tiny_npz, tmp_path / "a", kimg=0.128), progress=False)
    first = train(config(tiny_npz, tmp_path / "b", kimg=0.064), progress=False)
    ckpt = load_checkpoint(first.checkpoint)
    assert int(ckpt["G"]["stage"]) == 1 and 0 < float(ckpt["G"]["alpha"]) < 1  # stopped in the middle of a fade
    resumed = train(config(tiny_npz, tmp_path / "b", kimg=0.128), resume=True, progress=False)
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    for k in a["G"]:
        assert torch.equal(a["G"][k], b["G"][k]), k
    for k in a["D"]:
        assert torch.equal(a["D"][k], b["D"][k]), k


def test_progressive_trains_from_the_cli_and_samples_at_full_size(tmp_path, run_cli):
    rng = np.random.default_rng(0)
    x = (rng.random((40, 32, 32, 3)) * 255).astype(np.uint8)
    np.savez(tmp_path / "c.npz", x=x)
    code, out, err = run_cli("train", tmp_path / "c.npz", "--out", tmp_path / "run", "--arch", "progressive",
                             "--phase-kimg", "0.032", "--kimg", "0.16", "--width", "8", "--batch", "16",
                             "--log-every", "0.032", "--no-report", "--quiet")
    assert code == 0, err
    import json
    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["current_res"] for r in records][-1] == 16 and records[0]["current_res"] == 4
    code, out, err = run_cli("sample", tmp_path / "run", "-n", "4", "--outdir", tmp_path / "s")
    assert code == 0, err
    from PIL import Image
    assert Image.open(sorted((tmp_path / "s").glob("*.png"))[0]).size == (32, 32)


def test_each_architecture_gets_its_own_optimizer_defaults_unless_given():
    prog = resolve(TrainConfig(arch="progressive"), 32, 3)
    assert (prog.g_lr, prog.d_lr, prog.beta1, prog.beta2) == (1e-3, 1e-3, 0.0, 0.99)  # ProGAN's, for equalized lr
    dcgan = resolve(TrainConfig(), 128, 1)
    assert (dcgan.g_lr, dcgan.d_lr, dcgan.beta1, dcgan.beta2, dcgan.ema) == (2e-4, 2e-4, 0.5, 0.999, 0.0)
    assert resolve(TrainConfig(), 64, 3).g_lr == 5e-4  # the small-image row up to 64 px
    small = resolve(TrainConfig(), 28, 1)  # measured on Fashion-MNIST: a faster learning rate, EMA, small batches
    assert (small.g_lr, small.d_lr, small.beta1, small.beta2, small.ema, small.batch) == (5e-4, 5e-4, 0.5, 0.999, 0.99975, 16)
    assert (dcgan.batch, prog.batch, resolve(TrainConfig(batch=48), 28, 1).batch) == (64, 64, 48)
    # one extra 3x3 convolution per scale at 28 px only (at 32 and 64 px it halved the steps and lost)
    depths = [resolve(TrainConfig(), r, c).depth for r, c in ((28, 1), (32, 3), (64, 3), (128, 1))]
    assert depths + [prog.depth, resolve(TrainConfig(depth=0), 28, 1).depth] == [1, 0, 0, 0, 0, 0]
    # standing batch-norm statistics for the EMA at 28 px only (at 64 px the copied ones scored better)
    standing = [resolve(TrainConfig(), r, c).standing_stats for r, c in ((28, 1), (32, 3), (64, 3), (128, 1))]
    assert standing + [resolve(TrainConfig(standing_stats=False), 28, 1).standing_stats] == [True] + [False] * 4
    assert resolve(TrainConfig(ema=0.0, g_lr=1e-4), 28, 1).ema == 0.0
    given = resolve(TrainConfig(arch="msg", d_lr=4e-4, beta1=0.5), 32, 3)
    assert (given.g_lr, given.d_lr, given.beta1, given.beta2) == (1e-3, 4e-4, 0.5, 0.99)


@pytest.mark.parametrize("res, channels, options, arch, width", [
    (64, 3, {}, "dcgan", 32), (128, 3, {}, "progressive", 16), (128, 1, {}, "dcgan", 64), (64, 1, {}, "dcgan", 32),
    (32, 3, {}, "dcgan", 32), (28, 1, {}, "dcgan", 32), (128, 3, {"sn": True}, "dcgan", 64), (64, 3, {"arch": "msg"}, "msg", 16),
    (128, 3, {"arch": "dcgan", "width": 32}, "dcgan", 32), (128, 3, {"width": 8}, "progressive", 8)])
def test_auto_architecture_and_width(res, channels, options, arch, width):
    cfg = resolve(TrainConfig(**options), res, channels)
    assert (cfg.arch, cfg.width, cfg.d_width) == (arch, width, width)
