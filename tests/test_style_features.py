"""Style transfer at scale: tiles, schedules and stopping, iterate averaging, folders and video frames,
--init PATH, average pooling, bf16, cost-based progress, and the command line's help and strip."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from tqdm import tqdm

from gansmith.errors import UserError
from gansmith.style import Settings, Stylizer, flicker, transfer, transfer_folder
from gansmith.style.losses import Objective, Weights, style_targets
from gansmith.style.optim import IterateAverage, Method, converged, optimize
from gansmith.style.plan import Level, check_memory, estimate_memory, largest_fitting_size, plan
from gansmith.style.tiles import TiledObjective, blend_weights, spans, tile_boxes
from gansmith.style.stylize import load_image, progress_bar, to_tensor
from gansmith.style.vgg import load_vgg19
from test_style import _image, _stripes


@pytest.fixture(scope="module")
def vgg():
    return load_vgg19()


def _weights():
    return Weights(content={"relu4_2": 1.0}, style={"relu1_1": 5.0, "relu2_1": 5.0}, tv=1e-5)


# --- tiles --------------------------------------------------------------------------------------------

def test_spans_cover_with_overlap():
    assert spans(50, 64, 8) == [(0, 50)]
    s = spans(200, 64, 8)
    assert len(s) == 4                                   # 3 tiles of 64 overlapping by 8 cover only 176
    assert s[0][0] == 0 and s[-1][1] == 200 and len({b - a for a, b in s}) == 1 and s[0][1] <= 64
    overlaps = [b - next_a for (_, b), (next_a, _) in zip(s, s[1:])]
    assert min(overlaps) >= 8 and max(overlaps) <= 9     # no more overlap than asked: no pixel computed in vain
    assert spans(2048, 1024, 128) == [(0, 768), (640, 1408), (1280, 2048)]


def test_blend_weights_sum_to_one_and_fade_smoothly():
    hw, overlap = (150, 170), 8
    boxes = tile_boxes(hw, 64, overlap)
    assert len(boxes) == len(spans(150, 64, 8)) * len(spans(170, 64, 8)) > 4
    total = torch.zeros(hw)
    for (t, b, l, r), w in zip(boxes, blend_weights(hw, boxes, overlap)):
        total[t:b, l:r] += w
        # no step anywhere inside a tile's weights, so no step in the gradient between tiles
        assert w.diff(dim=0).abs().max() <= 1.0 / overlap + 1e-6
        assert w.diff(dim=1).abs().max() <= 1.0 / overlap + 1e-6
    assert torch.allclose(total, torch.ones(hw), atol=1e-6)


def test_one_tile_is_the_whole_image_objective(vgg):
    content, style = torch.rand(1, 3, 48, 40) * 255, torch.rand(1, 3, 40, 40) * 255
    grams = style_targets(vgg, [style], [1.0], _weights().style)
    image = torch.rand(1, 3, 48, 40) * 255
    total, terms, grad = Objective(vgg, content, grams, _weights()).evaluate(image)
    t_total, t_terms, t_grad = TiledObjective(vgg, content, grams, _weights(), 64, 8).evaluate(image)
    assert t_total == pytest.approx(total, rel=1e-5)
    assert torch.allclose(t_grad, grad, rtol=1e-4, atol=1e-9)


def test_tiled_gradient_follows_the_whole_image_gradient(vgg):
    """Four tiles: the blended gradient points the same way as the whole image's (the losses differ only
    by each tile's own statistics and zero padding at its edges)."""
    content, style = to_tensor(_image(96, 96), (96, 96)), to_tensor(_stripes(64, 64), (64, 64))
    grams = style_targets(vgg, [style], [1.0], _weights().style)
    image = content + torch.randn(content.shape, generator=torch.Generator().manual_seed(0)) * 20
    _, _, whole = Objective(vgg, content, grams, _weights()).evaluate(image)
    _, _, tiled = TiledObjective(vgg, content, grams, _weights(), 64, 16).evaluate(image)
    cosine = torch.nn.functional.cosine_similarity(whole.flatten(), tiled.flatten(), dim=0)
    assert cosine > 0.8
    assert 0.5 < float(tiled.norm() / whole.norm()) < 2


def test_tiled_level_lowers_the_loss_without_seams(vgg):
    y, x = np.mgrid[0:96, 0:96] / 96
    smooth = np.stack([np.sin(5 * x), np.cos(4 * y), np.sin(3 * (x + y))], -1) * 100 + 128
    content, style = Image.fromarray(smooth.astype(np.uint8)), _stripes(64, 64)
    losses = {}
    result = transfer(content, style, size=96, coarse_size=48, steps=3, final_steps=6, tile_size=64,
                      optimizer="adam", lr=4.0, model=vgg,
                      on_step=lambda s: losses.setdefault(s.size, []).append(s.losses["total"]))
    assert list(losses) == [(48, 48), (96, 96)]      # 2 x 2 tiles at 96 px
    assert losses[(96, 96)][-1] < 0.85 * losses[(96, 96)][0]
    # a seam would be a column (row) where neighbouring pixels differ more than elsewhere
    x = np.asarray(result, dtype=float)
    cols, rows = np.abs(np.diff(x, axis=1)).mean(axis=(0, 2)), np.abs(np.diff(x, axis=0)).mean(axis=(1, 2))
    for step, borders in ((cols, spans(96, 64, 8)), (rows, spans(96, 64, 8))):
        edges = {a for a, _ in borders[1:]} | {b for _, b in borders[:-1]}
        assert max(step[e - 1] for e in edges) < 2 * np.median(step)


def test_plan_tiles_only_above_the_tile_size_or_when_memory_is_short():
    s = Settings(size=512, tile_size=300)
    assert [(lv.hw, lv.tile) for lv in plan((512, 512), s)] == [((256, 256), 0), ((512, 512), 300)]
    auto = Settings(size=2048)
    roomy = plan((2048, 1024), auto, have=1 << 50)
    assert all(lv.tile == 0 for lv in roomy)
    tight = plan((2048, 1024), auto, have=estimate_memory(Level((1024, 2048), 1), auto) - 1)
    assert tight[-1].tile > 0 and all(lv.tile == 0 for lv in tight[:-1])


def test_memory_check_suggests_the_largest_size_that_fits():
    s = Settings(size=8192)
    have = 6 * 2 ** 30
    fits = largest_fitting_size((1000, 800), s, have)
    assert 512 < fits < 8192
    check_memory((1000, 800), Settings(size=fits), have)            # fits
    with pytest.raises(UserError, match=f"try --size {fits}"):
        check_memory((1000, 800), s, have)
    with pytest.raises(UserError):
        check_memory((1000, 800), Settings(size=fits + 64), have)


# --- optimizers, schedule, stopping -------------------------------------------------------------------

def test_converged_by_hand():
    assert not converged([10, 9, 8, 7, 6, 5], tolerance=0.01)        # falling fast
    assert converged([1.004, 1.003, 1.002, 1.001, 1.0005, 1.0], tolerance=0.01)
    assert not converged([1.004, 1.003, 1.002, 1.001, 1.0005, 1.0], tolerance=0.0)   # off
    assert not converged([1.0, 1.0], tolerance=0.5)                   # too few iterations to judge


def test_stopping_rule_ends_a_level_early():
    target = torch.full((1, 3, 8, 8), 100.0)

    def evaluate(x):
        loss = ((x - target) ** 2).mean() / 1e4 + 1.0   # a floor: relative change vanishes at the minimum
        return loss.item(), {"content/x": loss.item()}, 2 * (x - target) / 1e4 / x.numel()

    image = torch.zeros(1, 3, 8, 8)
    ran = len(list(optimize(evaluate, image, 200, Method("lbfgs", tolerance=1e-4))))
    assert 5 < ran < 200
    assert (image - target).abs().max() < 1


def test_lbfgs_first_step_registers_on_a_large_image():
    """PyTorch's first L-BFGS step (1 / |g|_1 in all) is below float32's resolution on a large image: the
    image does not change, no curvature is learnt and the second step is the raw gradient. A steep quadratic
    (Hessian 200/3 per pixel in the summed loss) on a 1024 x 1024 image shows it: a proper first step lets the
    second land on the minimum; the raw gradient would throw every pixel to 0 or 255."""
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, 1024, 1024, generator=gen) * 155 + 50
    image = (target + torch.randn(target.shape, generator=gen) * 20).clamp(0, 255)

    def evaluate(x):
        error = x.detach() - target
        loss = 100 * float((error ** 2).mean())
        return loss, {"total": loss}, 200 * error / error.numel()

    start = evaluate(image)[0]
    losses = [terms["total"] for terms in optimize(evaluate, image, 3, Method("lbfgs"))]
    assert losses[0] == pytest.approx(start)   # each logged loss is the one before that iteration's step
    assert losses[1] < 0.99 * start             # the first step changed the image (PyTorch's: not at all)
    assert evaluate(image)[0] < 1e-3 * start    # (PyTorch's first step: 45x the starting loss)


def test_iterate_average_is_bias_corrected():
    avg = IterateAverage(0.5)
    for value in (4.0, 4.0, 4.0):
        avg.update(torch.tensor(value))
    assert float(avg.value()) == pytest.approx(4.0)     # a constant sequence averages to itself
    avg = IterateAverage(0.5)
    avg.update(torch.tensor(2.0))
    avg.update(torch.tensor(6.0))
    # (0.5 * 0.5 * 2 + 0.5 * 6) / (1 - 0.25)
    assert float(avg.value()) == pytest.approx((0.25 * 2 + 0.5 * 6) / 0.75)


def test_adam_ends_on_the_average_of_its_iterates():
    target = torch.full((1, 3, 4, 4), 50.0)

    def evaluate(x):
        return 0.0, {}, torch.sign(x - target) / x.numel()   # Adam oscillates around 50 with lr 4

    seen = []
    image = torch.full((1, 3, 4, 4), 30.0)
    average = IterateAverage(0.8)
    for _ in optimize(evaluate, image, 30, Method("adam", lr=4.0, average=0.8)):
        seen.append(image.clone())
        average.update(image)
    assert torch.allclose(image, average.value())
    assert (image - target).abs().max() < (seen[-1] - target).abs().max() + 1e-6


def test_only_adam_averages_its_iterates():
    level = Level((64, 64), 10)
    assert Settings().method(level).average == 0.0                     # L-BFGS ends on its last iterate
    assert Settings(optimizer="adam").method(level).average == Settings().average > 0
    assert Settings(optimizer="adam", average=0).method(level).average == 0.0


def test_adam_with_averaging_lowers_the_style_loss(vgg):
    log = []
    transfer(_image(32, 32), _stripes(32, 32), size=32, steps=30, optimizer="adam", lr=4.0, model=vgg,
             on_step=lambda s: log.append(s.losses["style"]))
    assert log[-1] < 0.5 * log[0]


def test_progress_counts_pixels_times_iterations(vgg):
    settings = Settings(size=64, coarse_size=32, steps=4, final_steps=2, tolerance=0.5)
    stylizer = Stylizer(_stripes(32, 32), settings, vgg)
    content = _image(64, 64)
    levels = stylizer.plan(content)
    assert [lv.cost for lv in levels] == [32 * 32 * 4, 64 * 64 * 2]
    with tqdm(total=sum(lv.cost for lv in levels) / 1e6, file=io.StringIO()) as bar:
        stylizer.run(content, levels, bar)
        # full even when the (loose) stopping rule ended a level early
        assert bar.n == pytest.approx(bar.total)
    assert progress_bar(levels, False).total == pytest.approx((4 * 32 * 32 + 2 * 64 * 64) / 1e6)


# --- options ------------------------------------------------------------------------------------------

def test_init_from_an_image_file(tmp_path, vgg):
    start = _stripes(40, 40)
    start.save(tmp_path / "start.png")
    # one tiny Adam step barely moves the image: the result is the starting image, not the content
    result = transfer(_image(40, 40), _image(40, 40, seed=3), size=40, steps=1, optimizer="adam", lr=0.01,
                      average=0, init=str(tmp_path / "start.png"), model=vgg)
    assert np.abs(np.asarray(result, float) - np.asarray(start, float)).mean() < 1
    with pytest.raises(UserError, match="--init"):
        transfer(_image(40, 40), _stripes(40, 40), size=40, init=str(tmp_path / "missing.png"), model=vgg)


def test_average_pooling_is_avg_pool(vgg):
    x = torch.rand(1, 3, 16, 16) * 255
    avg = vgg(x, ["relu2_1"], pooling="avg")["relu2_1"]
    h = vgg.preprocess(x)
    for module in vgg.features[:4]:
        h = module(h)
    manual = vgg.features[6](vgg.features[5](torch.nn.functional.avg_pool2d(h, 2)))
    assert torch.allclose(avg, manual, atol=1e-4)
    assert not torch.allclose(avg, vgg(x, ["relu2_1"])["relu2_1"], atol=1e-2)


def test_bf16_objective_is_close_to_fp32_and_keeps_grams_fp32(vgg):
    content, style = torch.rand(1, 3, 32, 32) * 255, torch.rand(1, 3, 32, 32) * 255
    grams = style_targets(vgg, [style], [1.0], _weights().style, bf16=True)
    assert all(g.dtype == torch.float32 for g in grams.values())
    image = torch.rand(1, 3, 32, 32) * 255
    fp32 = Objective(vgg, content, style_targets(vgg, [style], [1.0], _weights().style), _weights())
    bf16 = Objective(vgg, content, grams, _weights(), bf16=True)
    (a, _, ga), (b, _, gb) = fp32.evaluate(image), bf16.evaluate(image)
    assert b == pytest.approx(a, rel=0.1) and gb.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(ga.flatten(), gb.flatten(), dim=0) > 0.9


def test_bf16_defaults_to_the_trainers_cpu_check():
    from gansmith.system import amp_by_default
    assert Settings().use_bf16() == amp_by_default(torch.device("cpu"))
    assert Settings(bf16=True).use_bf16() and not Settings(bf16=False).use_bf16()


# --- folders and frames -------------------------------------------------------------------------------

def _frames(folder, n, size=40):
    """A slow pan across a larger picture: frame i is the crop starting i pixels to the right."""
    folder.mkdir()
    wide = _image(size, size + n, seed=5)
    for i in range(n):
        wide.crop((i, 0, i + size, size)).save(folder / f"frame{i:03d}.png")
    return sorted(folder.iterdir())


def test_folder_is_resumable_and_computes_style_targets_once(tmp_path, vgg, monkeypatch):
    import gansmith.style.stylize as T
    _frames(tmp_path / "in", 3)
    calls = []
    real = T.style_targets
    monkeypatch.setattr(T, "style_targets", lambda *a, **k: calls.append(1) or real(*a, **k))
    written = transfer_folder(tmp_path / "in", _stripes(40, 40), tmp_path / "out", size=40, steps=3, model=vgg)
    assert [p.name for p in written] == ["frame000.png", "frame001.png", "frame002.png"]
    assert len(calls) == 1                                     # one level, one style size, three images
    (tmp_path / "out" / "frame001.png").unlink()
    again = transfer_folder(tmp_path / "in", _stripes(40, 40), tmp_path / "out", size=40, steps=3, model=vgg)
    assert [p.name for p in again] == ["frame001.png"]          # finished outputs are skipped
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        transfer_folder(tmp_path / "empty", _stripes(40, 40), tmp_path / "x", model=vgg)


def test_temporal_frames_start_from_the_previous_result(tmp_path, vgg):
    frames = _frames(tmp_path / "in", 3)
    # a first frame of its own, then frames that barely move from where they start (one tiny Adam step)
    written = transfer_folder(tmp_path / "in", _stripes(40, 40), tmp_path / "out", temporal=True, size=40,
                              steps=20, final_steps=1, optimizer="adam", lr=0.01, average=0, model=vgg)
    out = [np.asarray(Image.open(p), dtype=float) for p in written]
    first = np.asarray(transfer(Image.open(frames[0]), _stripes(40, 40), size=40, steps=20, optimizer="adam",
                                lr=0.01, average=0, model=vgg), dtype=float)
    assert np.abs(out[0] - np.asarray(Image.open(frames[0]), dtype=float)).mean() < 1   # lr 0.01: the photo
    assert np.abs(out[0] - first).mean() < 0.5
    assert np.abs(out[2] - out[0]).mean() < 0.5              # each frame is the previous result, not its input
    assert np.abs(np.asarray(Image.open(frames[2]), float) - out[0]).mean() > 3


def test_flicker_by_hand():
    a, b = Image.new("RGB", (4, 4), (10, 10, 10)), Image.new("RGB", (4, 4), (30, 30, 30))
    assert flicker([a, b], [a, b]) == pytest.approx(1.0)
    assert flicker([a, b], [a, a]) == 0.0
    assert flicker([a, b, a], [a, b, a]) == pytest.approx(1.0)


# --- command line -------------------------------------------------------------------------------------

def test_every_option_has_help_and_the_command_has_examples():
    from gansmith.cli import cli
    command = cli.get_command(None, "style")
    import click
    missing = [p.name for p in command.params if isinstance(p, click.Option) and not p.help]
    assert missing == []
    assert "gansmith style photos/ painting.jpg -o out/" in command.epilog


def test_cli_strip_and_folder(tmp_path):
    from gansmith.cli import main
    main(["style", "--example", "-o", str(tmp_path / "r.png"), "--size", "32", "--steps", "2", "--quiet",
          "--strip", str(tmp_path / "strip.png")])
    strip = Image.open(tmp_path / "strip.png")
    assert strip.height == 384 and strip.width > 3 * 300      # content | style | result
    _frames(tmp_path / "in", 2, size=32)
    main(["style", str(tmp_path / "in"), str(tmp_path / "in" / "frame000.png"), "-o", str(tmp_path / "out"),
          "--size", "32", "--steps", "2", "--quiet"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["frame000.png", "frame001.png"]


def test_cli_temporal_needs_a_folder(tmp_path):
    from test_style import _cli
    assert _cli(["style", "--example", "--temporal", "-o", str(tmp_path / "x.png")]) == 2
