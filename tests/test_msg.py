"""MSG-GAN: G's outputs at every scale, D's inputs at every scale, gradients reaching every scale."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gansmith.models.msg import MSGDiscriminator, MSGGenerator


@pytest.mark.parametrize("res, channels, scales", [(28, 1, [7, 14, 28]), (32, 3, [4, 8, 16, 32]), (64, 3, [4, 8, 16, 32, 64])])
def test_generator_emits_every_scale_and_discriminator_takes_them(res, channels, scales):
    G, D = MSGGenerator(res, channels, 16, 8), MSGDiscriminator(res, channels, 8)
    packed = G(torch.randn(4, 16))
    assert packed.shape == (4, channels * len(scales), res, res)
    images = D.scales(packed)
    assert [im.shape[-1] for im in images] == scales
    # each lower scale is exactly the nearest-upsampled output of its own to_rgb
    for im, group in zip(images, packed.split(channels, dim=1)):
        assert torch.allclose(F.interpolate(im, size=res, mode="nearest"), group)
    assert D(packed).shape == (4,)
    # a real image's lower scales are its average-pooled versions
    real = torch.rand(2, channels, res, res)
    assert [im.shape[-1] for im in D.scales(real)] == scales
    assert torch.allclose(D.scales(real)[0], F.adaptive_avg_pool2d(real, scales[0]))
    G.eval()
    assert G(torch.randn(2, 16)).shape == (2, channels, res, res)  # sampling sees an ordinary generator


def test_gradients_reach_every_scale_directly():
    G, D = MSGGenerator(32, 3, 16, 8), MSGDiscriminator(32, 3, 8)
    D(G(torch.randn(4, 16))).mean().backward()
    assert all(rgb.weight.grad is not None and rgb.weight.grad.abs().sum() > 0 for rgb in G.to_rgb)


def test_msg_trains_from_the_cli(tmp_path, run_cli):
    x = (np.random.default_rng(0).random((40, 32, 32, 3)) * 255).astype(np.uint8)
    np.savez(tmp_path / "c.npz", x=x)
    code, out, err = run_cli("train", tmp_path / "c.npz", "--out", tmp_path / "run", "--arch", "msg", "--kimg",
                             "0.096", "--width", "8", "--batch", "16", "--log-every", "0.032", "--no-report",
                             "--quiet", "--augment", "translation,cutout")
    assert code == 0, err
    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(np.isfinite(r["loss_d"]) for r in records)
    code, out, err = run_cli("sample", tmp_path / "run", "-n", "4", "-o", tmp_path / "g.png")
    assert code == 0, err
    code, out, err = run_cli("train", tmp_path / "c.npz", "--out", tmp_path / "r2", "--arch", "msg", "--augment", "color")
    assert code == 2 and "without color" in err
