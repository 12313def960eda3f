import numpy as np
import pytest
import torch

from gansmith.errors import UserError
from gansmith.export import TOLERANCE, export_onnx, export_torchscript
from gansmith.generate import (generate_from_seeds, generate_images, parse_seeds, seed_latents,
                               style_mixing_grid)
from gansmith.images import float_to_uint8
from gansmith.models.progressive import ProgressiveGenerator
from gansmith.models.stylegan import (SUPPORTED_RES, StyleDiscriminator, StyleGenerator, path_length_penalty,
                                      style_mix)
from gansmith.project import project, psnr
from gansmith.style.vgg import load_vgg19


def tiny_g(res=32, channels=3, **kw):
    torch.manual_seed(0)
    return StyleGenerator(res, channels, z_dim=16, w_dim=16, mapping_layers=2, width=4, **kw)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("res", SUPPORTED_RES)
def test_shapes_at_every_resolution(res, channels):
    G, D = tiny_g(res, channels), StyleDiscriminator(res, channels, width=4)
    z = torch.randn(3, G.z_dim)
    ws = G.mapping(z)
    assert ws.shape == (3, G.num_ws, G.w_dim)
    assert G.num_ws == 2 * (int(np.log2(res // (7 if res == 28 else 4))) + 1)
    x = G(z)
    assert x.shape == (3, channels, res, res)
    assert D(x).shape == (3,)
    G.eval()
    x = G(z)
    assert x.shape == (3, channels, res, res) and x.min() >= -1 and x.max() <= 1


def test_unsupported_resolution_is_refused():
    with pytest.raises(ValueError, match="supports resolutions"):
        StyleGenerator(48, 3)


def test_training_style_mixing_takes_fine_layers_from_a_second_latent():
    G = tiny_g(mixing_prob=1.0).train()
    z = torch.randn(4, G.z_dim)
    own = G.mapping(z, update_w_avg=False)
    crossovers = set()
    for seed in range(30):
        torch.manual_seed(seed)
        ws = G.styles(z)
        same = [torch.equal(ws[:, k], own[:, k]) for k in range(G.num_ws)]
        c = same.index(False)  # the first layer that is not z's own w
        assert all(same[:c]) and not any(same[c:]), same
        assert c >= 1
        assert all(torch.equal(ws[:, k], ws[:, c]) for k in range(c, G.num_ws))  # one second latent's w
        crossovers.add(c)
    assert crossovers == set(range(1, G.num_ws))  # every crossover layer gets drawn


def test_style_mixing_probability():
    G = tiny_g(mixing_prob=0.5).train()
    z = torch.randn(2, G.z_dim)
    own = G.mapping(z, update_w_avg=False)
    torch.manual_seed(0)
    mixed = sum(not torch.equal(G.styles(z), own) for _ in range(200))
    assert 70 < mixed < 130
    G.mixing_prob = 0.0
    assert all(torch.equal(G.styles(z), own) for _ in range(10))
    G.mixing_prob = 1.0
    G.eval()  # sampling never mixes
    assert torch.equal(G.styles(z), own)


def test_style_mix_changing_the_fine_latent_changes_only_fine_layers():
    G = tiny_g().eval()
    z1, z2, z3 = torch.randn(3, 1, G.z_dim)
    a = style_mix(G.mapping(z1), G.mapping(z2), 3)
    b = style_mix(G.mapping(z1), G.mapping(z3), 3)
    assert torch.equal(a[:, :3], b[:, :3]) and torch.equal(a[:, :3], G.mapping(z1)[:, :3])
    assert not torch.equal(a[:, 3:], b[:, 3:])
    assert torch.equal(a[:, 3:], G.mapping(z2)[:, 3:])
    # and it matters for the image: only fine styles changed, the image changed
    assert not torch.equal(G.synthesis(a, "const"), G.synthesis(b, "const"))


def test_w_avg_tracks_the_mean_w_in_training_only():
    G = tiny_g()
    z = torch.randn(64, G.z_dim)
    G.eval()
    G(z)
    assert torch.equal(G.w_avg, torch.zeros(G.w_dim))
    G.train()
    G.mixing_prob = 0.0
    target = G.mapping_net(z).mean(0).detach()
    for _ in range(2000):  # 0.995 ** 2000 ~ 4e-5 of the start remains
        G.mapping(z)
    torch.testing.assert_close(G.w_avg, target, atol=1e-4, rtol=1e-4)
    G.w_avg.zero_()
    G(z)  # a training forward pass updates it once, with beta 0.995
    torch.testing.assert_close(G.w_avg, target * (1 - G.w_avg_beta))


def test_truncation_zero_gives_the_average_image():
    G = tiny_g()
    G.w_avg.normal_()
    G.eval()
    x = G(torch.randn(5, G.z_dim), truncation=0.0)
    assert (x - x[:1]).abs().max() == 0
    avg = G.synthesis(G.w_avg.expand(1, G.num_ws, -1), "const").clamp(-1, 1)
    torch.testing.assert_close(x[:1], avg)
    z = torch.randn(5, G.z_dim)  # psi between 0 and 1 moves each image towards it
    full, half = G(z), G(z, truncation=0.5)
    assert (half - avg).abs().mean() < (full - avg).abs().mean()


def test_eval_sampling_is_reproducible_from_a_seed_and_training_noise_is_random():
    G = tiny_g().eval()
    a = generate_images(G, 4, seed=7)
    torch.manual_seed(123)  # the global RNG must not matter in eval mode
    b = generate_images(G, 4, seed=7)
    assert np.array_equal(a, b) and a.shape == (4, 32, 32, 3)
    assert not np.array_equal(a, generate_images(G, 4, seed=8))
    with torch.no_grad():
        G.layers[-1].noise_strength.fill_(1.0)
        G.train()
        z = torch.randn(2, G.z_dim)
        torch.manual_seed(1)
        x1 = G(z)
        torch.manual_seed(1)
        x2 = G(z)
        x3 = G(z)
    assert torch.equal(x1, x2) and not torch.equal(x2, x3)  # global RNG drives training noise and mixing


def test_noise_is_per_pixel_and_strength_scales_it():
    G = tiny_g().eval()
    ws = G.mapping(torch.randn(1, G.z_dim))
    before = G.synthesis(ws, "const")
    with torch.no_grad():
        G.layers[-1].noise_strength.fill_(0.5)
    assert not torch.equal(G.synthesis(ws, "const"), before)
    zero_noise = [torch.zeros(1, 1, layer.res, layer.res) for layer in G.layers]
    torch.testing.assert_close(G.synthesis(ws, noise=zero_noise), before)


def test_gradients_reach_every_parameter():
    G, D = tiny_g(), StyleDiscriminator(32, 3, width=4)
    (D(G(torch.randn(4, G.z_dim))).sum()).backward()
    for name, p in [*G.named_parameters(prefix="G"), *D.named_parameters(prefix="D")]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_onnx_and_torchscript_exports_match_pytorch():
    G = tiny_g(28, 1)
    with torch.no_grad():
        for layer in G.layers:
            layer.noise_strength.fill_(0.3)  # the const noise must travel into the export
    G.w_avg.normal_()
    G.eval()
    z = torch.randn(3, G.z_dim)
    _, actual = export_onnx(G, z, {})
    with torch.no_grad():
        expected = G(z).numpy()
    assert np.abs(actual - expected).max() <= TOLERANCE["onnx"]
    _, actual = export_torchscript(G, z, {})
    assert np.abs(actual - expected).max() <= TOLERANCE["torchscript"]


def test_channels_last_and_bf16_autocast():
    G, D = tiny_g(), StyleDiscriminator(32, 3, width=4)
    z = torch.randn(4, G.z_dim)
    torch.manual_seed(0)
    reference = G(z)
    G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    torch.manual_seed(0)
    torch.testing.assert_close(G(z), reference, atol=1e-4, rtol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.manual_seed(0)
        x = G(z)
        logits = D(x)
    assert x.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()
    assert (x.float() - reference).abs().mean() < 0.1 * reference.abs().mean()
    logits.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in G.parameters())


def test_path_length_penalty():
    G = tiny_g().train()
    z = torch.randn(4, G.z_dim)
    torch.manual_seed(0)
    penalty, pl_mean = path_length_penalty(G, z, torch.zeros(()), decay=1.0)
    assert pl_mean > 0 and not pl_mean.requires_grad
    penalty.backward()
    assert G.const.grad.abs().sum() > 0 and G.mapping_net[1].weight.grad.abs().sum() > 0
    with torch.no_grad():  # twice the toRGB weights: twice the image's Jacobian, twice the path length
        for rgb in G.to_rgb:
            rgb.conv.conv.weight.mul_(2)
    torch.manual_seed(0)
    penalty2, pl_mean2 = path_length_penalty(G, z, torch.zeros(()), decay=1.0)
    torch.testing.assert_close(pl_mean2, 2 * pl_mean)
    torch.testing.assert_close(penalty2, 4 * penalty.detach())
    torch.manual_seed(0)
    _, moved = path_length_penalty(G, z, torch.tensor(1.0), decay=0.01)
    torch.testing.assert_close(moved, torch.tensor(1.0).lerp(pl_mean2, 0.01))
    torch.manual_seed(0)  # one sample: its length is the mean, nothing to penalize
    penalty1, _ = path_length_penalty(G, z[:1], torch.zeros(()), decay=1.0)
    assert penalty1 < 1e-10


# --- using a model: seeds, truncation, style-mixing grid ---

def test_parse_seeds():
    assert parse_seeds("0-35,40") == list(range(36)) + [40]
    assert parse_seeds(" 7 , 3-4") == [7, 3, 4]
    for bad in ("", "a", "1-", "-3", "5-2", "1,,2", f"{2 ** 63}"):
        with pytest.raises(UserError):
            parse_seeds(bad)


def test_generate_from_seeds_follows_the_documented_rule():
    G = tiny_g().eval()
    images = generate_from_seeds(G, [5, 9, 5])
    assert np.array_equal(images[0], images[2]) and not np.array_equal(images[0], images[1])
    z9 = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(9))  # the rule in the docs
    with torch.no_grad():
        assert np.array_equal(images[1], float_to_uint8(G(z9))[0])
    assert np.array_equal(generate_from_seeds(G, [9]), generate_from_seeds(G, [9]))


def test_truncation_from_seeds_stylegan_and_other_generators():
    G = tiny_g()
    G.w_avg.normal_()
    G.eval()
    avg = float_to_uint8(G.synthesis(G.w_avg.expand(1, G.num_ws, -1), "const"))[0]
    assert all(np.array_equal(im, avg) for im in generate_from_seeds(G, [1, 2, 3], truncation=0.0))
    P = ProgressiveGenerator(32, 1, z_dim=16, width=4).eval()
    P.set_growth(P.n_stages - 1, 1.0)
    with torch.no_grad():  # other generators: z scaled by psi, so psi 0 is G(0)
        at_zero = float_to_uint8(P(torch.zeros(1, 16)))[0]
        z3 = torch.randn(1, 16, generator=torch.Generator().manual_seed(3))
        half = float_to_uint8(P(0.5 * z3))[0]
    assert np.array_equal(generate_from_seeds(P, [3, 4], truncation=0.0)[1], at_zero)
    assert np.array_equal(generate_from_seeds(P, [3], truncation=0.5)[0], half)


def test_style_mixing_grid():
    G = tiny_g().eval()
    with torch.no_grad():
        for rgb in G.to_rgb:
            rgb.conv.conv.weight.mul_(0.3)  # keep the images inside [-1, 1], as a trained G's are
    rows, cols, crossover = [1, 2], [3, 4, 5], 4
    grid = style_mixing_grid(G, rows, cols, crossover)
    pad, side = 2, G.res

    def cell(r, c):
        y, x = pad + r * (side + pad), pad + c * (side + pad)
        return grid[y:y + side, x:x + side]

    assert grid.shape == (pad + 3 * (side + pad), pad + 4 * (side + pad), 3)
    sources = {s: generate_from_seeds(G, [s])[0] for s in rows + cols}
    assert (cell(0, 0) == 255).all()
    assert all(np.array_equal(cell(0, 1 + j), sources[s]) for j, s in enumerate(cols))
    assert all(np.array_equal(cell(1 + i, 0), sources[s]) for i, s in enumerate(rows))
    z = seed_latents(G.z_dim, [2, 4])
    with torch.no_grad():
        ws = G.mapping(z)
        expected = float_to_uint8(G.synthesis(style_mix(ws[:1], ws[1:], crossover), "const"))[0]
    assert np.array_equal(cell(2, 2), expected)  # row seed 2's coarse styles, column seed 4's fine ones
    for bad in (0, G.num_ws):
        with pytest.raises(UserError, match="crossover"):
            style_mixing_grid(G, rows, cols, bad)
    with pytest.raises(UserError, match="StyleGAN"):
        style_mixing_grid(ProgressiveGenerator(32, 1, z_dim=16, width=4), rows, cols, 1)


# --- projection ---

FAST_LAYERS = ("relu1_2", "relu2_2", "relu3_4")  # the default adds relu4_4: twice the time per step


@pytest.fixture(scope="module")
def vgg():
    return load_vgg19()


def in_range(G):
    with torch.no_grad():
        for layer in G.layers:
            layer.noise_strength.fill_(0.1)
        for rgb in G.to_rgb:
            rgb.conv.conv.weight.mul_(0.3)
    return G.eval()


@pytest.mark.slow
def test_projection_recovers_a_generated_image_in_w_plus(vgg):
    G = in_range(tiny_g())
    target, other = generate_from_seeds(G, [0, 1])
    before = [p.clone() for p in G.parameters()]
    result = project(G, target, steps=60, space="w+", vgg=vgg, vgg_layers=FAST_LAYERS, frame_every=10,
                     progress=False)
    assert result.psnr > psnr(target, other) + 6  # a quarter of the squared error, or less
    assert result.latent.shape == (1, G.num_ws, G.w_dim) and len(result.noise) == len(G.layers)
    assert result.frames.shape == (7, 32, 32, 3) and np.array_equal(result.frames[-1], result.image)
    with torch.no_grad():  # the latent and noise returned reproduce the image
        again = float_to_uint8(G.synthesis(result.latent, noise=result.noise))[0]
    assert np.array_equal(again, result.image)
    assert all(torch.equal(a, b) and b.grad is None for a, b in zip(before, G.parameters()))
    assert not G.training or pytest.fail("G's mode must be restored")


@pytest.mark.slow
def test_projection_in_w_and_z(vgg):
    G = in_range(tiny_g())
    target, other = generate_from_seeds(G, [0, 1])
    result = project(G, target, steps=40, vgg=vgg, vgg_layers=FAST_LAYERS, progress=False)
    assert result.psnr > psnr(target, other) + 5
    assert torch.equal(result.latent[:, 0], result.latent[:, -1])  # "w": one w for every layer
    torch.manual_seed(0)
    P = ProgressiveGenerator(32, 1, z_dim=16, width=4).eval()  # growth stage 0: smooth 4 x 4 upsampled images
    target, other = generate_from_seeds(P, [0, 1])
    result = project(P, target, steps=40, vgg=vgg, vgg_layers=FAST_LAYERS, progress=False)
    assert result.latent.shape == (1, 16) and result.noise is None
    assert result.psnr > psnr(target, other) + 5


def test_projection_refuses_bad_input():
    G, P = tiny_g(), ProgressiveGenerator(32, 1, z_dim=16, width=4)
    image = np.zeros((40, 50, 3), np.uint8)
    with pytest.raises(UserError, match="StyleGAN"):
        project(P, image, space="w+")
    with pytest.raises(UserError, match="latent space"):
        project(G, image, space="s")
    with pytest.raises(UserError, match="uint8"):
        project(G, image.astype(np.float32))
    with pytest.raises(UserError, match="steps"):
        project(G, image, steps=0)
