"""Every registered architecture and discriminator trains through the one trainer: it learns, resumes bit-exactly
and samples from its checkpoint alone."""
import json

import numpy as np

import pytest
import torch

from gansmith.generate import generate_images, load_generator
from gansmith.training import train
from gansmith.training.checkpoint import load_checkpoint
from conftest import tiny_config

CASES = {
    "stylegan": dict(arch="stylegan", res=32, pl_weight=2.0, r1=0.05, r1_every=2),
    "fastgan (projected D)": dict(arch="fastgan", res=32, loss="hinge", augment="translation,color", standing_stats=True),
    "dcgan with the projected D": dict(d_arch="projected", loss="rpgan", r1=0.1, r2=0.1, r1_every=2),
    "dcgan with the vision-aided D": dict(d_arch="vision-aided"),
}


@pytest.mark.parametrize("options", CASES.values(), ids=CASES.keys())
def test_architecture_trains_resumes_exactly_and_samples(options, tiny_npz, tmp_path):
    opts = {"batch": 8, "checkpoint_every": 0.016, **options}
    straight = train(tiny_config(tiny_npz, tmp_path / "a", kimg=0.032, **opts), progress=False)
    train(tiny_config(tiny_npz, tmp_path / "b", kimg=0.016, **opts), progress=False)
    resumed = train(tiny_config(tiny_npz, tmp_path / "b", kimg=0.032, **opts), resume=True, progress=False)
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    assert a["step"] == b["step"] == 4
    for key in ("G", "D"):
        assert a[key].keys() == b[key].keys() and all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor([r["loss_d"], r["loss_g"]])).all() for r in records)
    G, cfg = load_generator(tmp_path / "a")
    images = generate_images(G, 4, seed=1)
    assert images.shape == (4, cfg.res, cfg.res, 1) and images.std() > 0
    assert (generate_images(G, 4, seed=1) == images).all()


def test_the_projected_d_keeps_its_frozen_backbone_out_of_checkpoints_and_optimizers(tiny_npz, tmp_path):
    from gansmith.training.config import resolve
    from gansmith.training.trainer import Trainer
    t = Trainer(resolve(tiny_config(tiny_npz, tmp_path / "r", d_arch="projected"), 28, 1))
    optimized = {id(p) for g in t.opt_D.param_groups for p in g["params"]}
    backbone = list(t.D.backbone.buffers())
    assert backbone and all(id(b) not in optimized for b in backbone)
    assert not any(k.startswith("backbone.") for k in t.D.state_dict())
    assert sum(p.numel() for p in t.D.parameters()) < 2_000_000  # the heads only


@pytest.fixture(scope="module")
def stylegan_run(tmp_path_factory):
    import numpy as np
    root = tmp_path_factory.mktemp("stylegan")
    rng = np.random.default_rng(0)
    x = np.zeros((32, 32, 32, 3), np.uint8)
    for i in range(len(x)):
        s = rng.integers(6, 20)
        y0, x0 = rng.integers(0, 32 - s, size=2)
        x[i, y0:y0 + s, x0:x0 + s] = rng.integers(0, 256, 3)
    np.savez(root / "colour.npz", x=x)
    train(tiny_config(root / "colour.npz", root / "run", arch="stylegan", kimg=0.032, batch=8), progress=False)
    return root


def test_mix_project_and_a_walk_between_projected_photos(stylegan_run, run_cli):
    from PIL import Image
    run, out = stylegan_run / "run", stylegan_run / "out"
    code, _, err = run_cli("mix", run, "--rows", "1,2", "--cols", "3-5", "--size", "32", "-o", out / "mix.png")
    assert code == 0, err
    assert Image.open(out / "mix.png").size == (4 * 34 + 2, 3 * 34 + 2)  # (1 + 3 columns) x (1 + 2 rows) tiles
    photo = stylegan_run / "photo.png"
    Image.fromarray(np.full((40, 50, 3), (200, 40, 40), np.uint8)).save(photo)
    code, stdout, err = run_cli("project", run, photo, "-o", out / "me", "--steps", "20", "--space", "w+")
    assert code == 0, err
    saved = np.load(out / "me" / "latent.npz")
    G, _ = load_generator(run)
    assert str(saved["space"]) == "w+" and saved["latent"].shape == (1, G.num_ws, G.w_dim)
    result = json.loads((out / "me" / "result.json").read_text())
    assert result["psnr"] > 0 and "PSNR" in stdout
    code, _, err = run_cli("interpolate", run, "-o", out / "walk.gif", "--seeds", f"1,{out / 'me' / 'latent.npz'}",
                           "--frames", "3", "--size", "32")
    assert code == 0, err
    assert Image.open(out / "walk.gif").n_frames == 6


def test_mix_refuses_a_model_without_styles(tiny_npz, tmp_path, run_cli):
    train(tiny_config(tiny_npz, tmp_path / "run", kimg=0.016), progress=False)
    code, _, err = run_cli("mix", tmp_path / "run", "-o", tmp_path / "mix.png")
    assert code == 2 and "style mixing needs a StyleGAN generator" in err


def test_a_stylegan_run_shows_truncation_and_style_mixing(stylegan_run):
    from PIL import Image
    from gansmith.report import write_report
    samples = stylegan_run / "run" / "samples"
    truncation, mixing = Image.open(samples / "truncation.png"), Image.open(samples / "style-mixing.png")
    assert truncation.size == (8 * 34 + 2, 4 * 34 + 2)  # 8 seeds x 4 truncation levels of 32 px tiles
    rows = np.asarray(truncation).reshape(-1)  # psi 0 (the last row) is the average image for every seed
    last = np.asarray(truncation)[3 * 34 + 2:4 * 34, 2:]
    tiles = [last[:, i * 34:i * 34 + 32] for i in range(8)]
    assert all(np.array_equal(tiles[0], t) for t in tiles) and rows.std() > 0
    assert mixing.size == (5 * 34 + 2, 4 * 34 + 2)
    page = write_report(stylegan_run / "run").read_text()
    assert "truncation" in page and "style mixing" in page
