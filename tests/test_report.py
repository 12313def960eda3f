"""Seeing a run: the HTML report (also in a real headless browser), the latent walk, the generator export."""
import base64
import html
import io
import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gansmith.generate import (generate_images, walk_frames, walk_latents, latents,
                               load_generator, slerp)
from gansmith.images import make_grid, upscale_nearest
from gansmith.report import MAX_GRIDS, refresh_report, write_report
from gansmith.report.plots import event_marks
from gansmith.training import train
from conftest import tiny_config

SECTIONS = ["samples", "findings", "curves", "quality", "memorization", "config"]
EVIL = '<script>alert("x")</script>'
BATCH = 64
CHROMIUM = "/usr/bin/chromium"


class Page(HTMLParser):
    """The parts of a report a test looks at: section ids, images, and every link-like attribute."""

    def __init__(self, text: str):
        super().__init__()
        self.ids, self.images, self.links, self.tags = [], [], [], set()
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "img":
            self.images.append(a)
        self.links += [a[k] for k in ("src", "href", "action", "srcset") if k in a]

    def alts(self) -> list[str]:
        return [img["alt"] for img in self.images]


def decode(uri: str) -> Image.Image:
    head, data = uri.split(",", 1)
    assert head == "data:image/png;base64"
    img = Image.open(io.BytesIO(base64.b64decode(data)))
    img.load()
    return img


def read_report(run: Path) -> tuple[str, Page]:
    text = write_report(run).read_text(encoding="utf-8")
    return text, Page(text)


# --- run folders -------------------------------------------------------------------------------------
def record(i: int, **extra) -> dict:
    step = 8 * (i + 1)
    return {"step": step, "kimg": step * BATCH / 1000, "seconds": 3.0 * i, "loss_g": 2 + np.sin(i), "loss_d": 1 - 0.02 * i,
            "d_real": 0.7, "d_fake": 0.3, "d_acc": 0.8, "d_grad": 0.5 + i, "g_grad": 2.0, "lr_g": 2e-4, "lr_d": 1e-4,
            "img_per_s": 150.0, "div_fake": 0.2 - 0.005 * i, "div_real": 0.25, **extra}


def write_config(run: Path, **options) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps({
        "config": {"batch": BATCH, "kimg": 20.0, "data": EVIL, **options},
        "data": {"source": EVIL, "n": 100, "res": 28, "channels": 1},
        "versions": {"gansmith": "0.1.0"}, "created": "2026-01-01T00:00:00+0000"}))


def write_metrics(run: Path, records: list[dict], tail: str = "") -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + tail)


def write_grids(run: Path, steps) -> None:
    (run / "samples").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for step in steps:
        grid = make_grid(rng.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8))
        Image.fromarray(grid[..., 0]).save(run / "samples" / f"grid-{step:08d}.png")


@pytest.fixture
def full_run(tmp_path):
    """A run folder with everything the report can show, and hostile strings wherever a user's text can go."""
    run = tmp_path / "full"
    write_config(run, eval_n=1000)
    warning = {"kind": "d_wins", "severity": "warning", "message": EVIL, "evidence": {"loss_d": 0.01, "note": EVIL},
               "remedy": "lower --d-lr " + EVIL, "applied": True}
    info = {"kind": "balance", "severity": "info", "message": "skipping D updates", "evidence": {"step": 40},
            "remedy": ""}
    records = [record(i, balance={"d_skipped": i % 3, "d_extra": 0}) for i in range(20)]
    records[4]["events"], records[12]["events"] = [info], [warning]
    for i in (5, 10, 15, 19):
        records[i].update(fid=100.0 / i, kid=0.1 / i, kid_std=0.01, precision=0.5, recall=0.02 * i)
    write_metrics(run, records)
    write_grids(run, [8 * (i + 1) for i in range(20)])
    (run / "eval.json").write_text(json.dumps({"metrics": {"fid": 12.5, "kid": 0.01, "kid_std": 0.001},
                                               "n": 500, "real": EVIL, "checkpoint": "latest", "seed": 0}))
    Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (64, 1))).save(run / "nearest.png")
    return run


@pytest.fixture
def run_without_metrics(tmp_path):
    """A run that has only just started: config.json and empty folders."""
    run = tmp_path / "new"
    write_config(run)
    for d in ("samples", "checkpoints"):
        (run / d).mkdir()
    return run


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    np.savez(root / "noise.npz", x=np.random.default_rng(0).integers(0, 256, (32, 28, 28), dtype=np.uint8))
    train(tiny_config(root / "noise.npz", root / "run", kimg=0.128, report=True, sample_every=0.032), progress=False)
    return root / "run"


# --- the report --------------------------------------------------------------------------------------
def test_report_shows_every_part_of_a_run_self_contained(full_run):
    text, page = read_report(full_run)
    assert page.ids == SECTIONS
    # Self-contained: every image is an embedded PNG that decodes and is not blank; no link leaves the page.
    assert all(link.startswith(("data:image/png;base64,", "#")) for link in page.links), page.links
    assert not page.tags & {"link", "iframe", "object", "embed"}
    for img in page.images:
        picture = decode(img["src"])
        assert picture.width > 0 and picture.height > 0
        lo, hi = picture.convert("L").getextrema()
        assert hi > lo, img["alt"]
    alts = page.alts()
    for chart in ("Losses", "Discriminator outputs", "Gradient norms", "Sample diversity", "Learning rates",
                  "Balance-policy interventions", "Speed",
                  "FID (lower is better)", "KID (lower is better)", "Precision and recall"):
        assert chart in alts
    assert "nearest training images" in alts
    # Sample grids: the latest large, plus up to MAX_GRIDS spread from the first to the latest, labelled with kimg.
    grids = [a for a in alts if "step " in a]
    assert len(grids) == MAX_GRIDS + 1
    assert grids[0] == "latest: 10.2 kimg · step 160"
    assert "0.512 kimg · step 8" in grids and "10.2 kimg · step 160" in grids
    # Findings with their evidence and remedy; eval.json; the config.
    assert "d_wins" in text and "loss_d" in text and "lower --d-lr" in text and "skipping D updates" in text
    assert text.count("applied by --auto-fix") == 1 and "1 warning, 1 info" in text
    # eval.json's metrics under human names, each with what it means; KID with its spread
    assert "12.5" in text and "0.01000 ± 0.00100" in text and "Fréchet Inception Distance" in text
    assert "kid_std" not in text
    assert "5.26 (n=1,000)" in text  # the FID card names how many images the FID is from (--eval-n 1000)
    assert "<th>batch</th><td>64</td>" in text and "created 2026-01-01" in text
    # Every user-controlled string is escaped.
    assert EVIL not in text and html.escape(EVIL) in text


def test_events_are_marked_at_their_kimg():
    records = [record(0), record(1, events=[{"severity": "warning"}, {"severity": "info"}]), record(2, events="junk")]
    assert event_marks(records) == [(1.024, "warning"), (1.024, "info")]


@pytest.mark.parametrize("case", ["no metrics yet", "last line cut short", "no config.json"])
def test_report_renders_whatever_the_run_folder_has(case, tmp_path):
    run = tmp_path / "run"
    if case != "no config.json":
        write_config(run)
    if case == "no metrics yet":
        (run / "checkpoints").mkdir()
    else:
        write_metrics(run, [record(i) for i in range(5)], tail='{"step": 48, "kimg": 3.0')
        write_grids(run, [8, 40, 1000])
    text, page = read_report(run)
    assert set(SECTIONS) <= set(page.ids)
    if case == "no metrics yet":
        assert "No metrics yet" in text and "No sample grids yet" in text and not page.images
    else:
        assert "Losses" in page.alts()
        assert "2.56 kimg · step 40" in page.alts()  # kimg from the metrics record of that step
    if case == "last line cut short":
        assert "64 kimg · step 1000" in page.alts()  # no record: kimg from the batch size in config.json
    if case == "no config.json":
        assert "config.json is missing" in text and "step 1000" in page.alts()


def test_report_command_on_a_trained_run(trained_run, run_cli):
    code, out, err = run_cli("report", trained_run)
    assert code == 0, err
    assert out.strip() == f"wrote {trained_run / 'report.html'}"
    page = Page((trained_run / "report.html").read_text())
    assert "Losses" in page.alts() and "latest: 0.128 kimg · step 8" in page.alts()


def test_refresh_report_warns_instead_of_failing(tmp_path):
    with pytest.warns(UserWarning, match="could not refresh the report"):
        assert refresh_report(tmp_path / "missing") is None


def chromium_render(page: Path, tmp_path: Path) -> tuple[str, list[str], np.ndarray]:
    """Open the page in headless Chromium: (DOM after load, console messages, screenshot as an array)."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must install .ci/system-packages")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
         "--window-size=1200,3000", f"--screenshot={shot}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console, np.asarray(Image.open(shot).convert("L"), dtype=float)


@pytest.mark.parametrize("which", ["full_run", "run_without_metrics"])
def test_report_draws_in_a_real_browser(which, request, tmp_path):
    report = write_report(request.getfixturevalue(which))
    n_images = len(Page(report.read_text()).images)
    dom, console, screenshot = chromium_render(report, tmp_path)
    assert not console, console
    body = Page(dom)
    assert f'data-images-ok="{n_images}"' in dom and 'data-images-broken="0"' in dom, "an image did not decode"
    assert set(SECTIONS) <= set(body.ids)
    assert screenshot.std() > 10 and len(np.unique(screenshot)) > 50  # drawn, not a blank page


# --- the latent walk ---------------------------------------------------------------------------------
def test_slerp_keeps_to_the_sphere_and_hits_both_ends():
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    for t in (0.25, 0.5, 0.8):
        assert abs(float(slerp(a, b, t).norm()) - 1) < 1e-6  # a straight line would cut inside the sphere
    assert torch.allclose(slerp(a, a, 0.3), a)  # parallel vectors: no division by zero


def test_latent_walk_visits_each_seed_and_loops(trained_run):
    G, _ = load_generator(trained_run)
    seeds, per = [3, 7, 11], 5
    z = walk_latents(G, seeds, per)
    assert z.shape == (len(seeds) * per, G.z_dim)
    keys = [latents(1, G.z_dim, s)[0] for s in seeds]
    assert all(torch.equal(z[i * per], key) for i, key in enumerate(keys))
    assert torch.equal(slerp(keys[-1], keys[0], 1.0), z[0])  # the frame after the last is the first
    steps = (z[1:] - z[:-1]).norm(dim=1)
    assert (z[0] - z[-1]).norm() <= 1.5 * steps.max()  # no jump where the loop closes
    frames = walk_frames(G, seeds, per)
    assert frames.shape == (len(seeds) * per, 28, 28, 1)
    for i, seed in enumerate(seeds):
        assert np.array_equal(frames[i * per], generate_images(G, 1, seed=seed)[0])


def test_interpolate_writes_a_looping_gif(trained_run, tmp_path, run_cli):
    code, out, err = run_cli("interpolate", trained_run, "-o", tmp_path / "walk.gif", "--seeds", "1,2",
                             "--frames", "4", "--size", "56")
    assert code == 0, err
    gif = Image.open(tmp_path / "walk.gif")
    assert gif.n_frames == 8 and gif.info["loop"] == 0 and gif.size == (56, 56)
    G, _ = load_generator(trained_run)
    expected = upscale_nearest(walk_frames(G, [1, 2], 4)[:1], 56)[0, ..., 0]
    assert np.array_equal(np.asarray(gif.convert("L")), expected)


def test_interpolate_tiles_walk_between_the_sample_grids_of_the_seeds(trained_run, tmp_path, run_cli):
    code, out, err = run_cli("interpolate", trained_run, "-o", tmp_path / "tiles.gif", "--seeds", "1,2",
                             "--frames", "2", "--tiles", "2", "--size", "56")
    assert code == 0, err
    gif = Image.open(tmp_path / "tiles.gif")
    assert gif.n_frames == 4 and "2 x 2 walks" in out
    G, _ = load_generator(trained_run)
    for frame, seed in ((0, 1), (2, 2)):  # each seed's frame is the grid `gansmith sample -n 4 --seed S` makes
        gif.seek(frame)
        expected = make_grid(generate_images(G, 4, seed=seed), nrow=2)[..., 0]
        assert np.array_equal(np.asarray(gif.convert("L")), expected)


def test_interpolate_writes_an_mp4(trained_run, tmp_path, run_cli):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="MP4 needs imageio-ffmpeg (the export extra)")
    code, out, err = run_cli("interpolate", trained_run, "-o", tmp_path / "walk.mp4", "--frames", "3")
    assert code == 0, err
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "walk.mp4"))
    meta = next(reader)
    assert meta["size"] == (252, 252) and sum(1 for _ in reader) == 12


def test_mp4_without_imageio_ffmpeg_says_what_to_install(trained_run, tmp_path, run_cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    code, out, err = run_cli("interpolate", trained_run, "-o", tmp_path / "walk.mp4")
    assert code == 2 and err.startswith("error:") and "pip install imageio-ffmpeg" in err
    assert not (tmp_path / "walk.mp4").exists()


# --- export ------------------------------------------------------------------------------------------
def test_export_torchscript_reproduces_the_generator(trained_run, tmp_path, run_cli):
    code, out, err = run_cli("export", trained_run, "-o", tmp_path / "G.pt")
    assert code == 0, err
    assert "torchscript" in out and "z N x 16" in out
    G, _ = load_generator(trained_run)
    exported = torch.jit.load(str(tmp_path / "G.pt"))
    z = latents(5, G.z_dim, seed=99)
    with torch.no_grad():
        assert torch.allclose(exported(z), G(z), atol=1e-5)


def test_export_onnx_reproduces_the_generator(trained_run, tmp_path, run_cli):
    reason = "ONNX export needs the export extra: pip install 'gansmith[export]'"
    for name in ("onnx", "onnxscript"):
        pytest.importorskip(name, reason=reason)
    ort = pytest.importorskip("onnxruntime", reason=reason)
    code, out, err = run_cli("export", trained_run, "-o", tmp_path / "G.onnx")
    assert code == 0, err
    G, _ = load_generator(trained_run)
    z = latents(5, G.z_dim, seed=99)  # another batch size than the export's check: the batch is dynamic
    session = ort.InferenceSession(str(tmp_path / "G.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {"z": z.numpy()})[0], G(z).numpy(), atol=1e-4)


def test_an_exported_file_says_how_to_reproduce_gansmith_sample(trained_run, tmp_path, run_cli):
    code, out, err = run_cli("export", trained_run, "-o", tmp_path / "G.pt")
    assert code == 0, err
    extra = {"gansmith.json": ""}
    exported = torch.jit.load(str(tmp_path / "G.pt"), _extra_files=extra)
    usage = json.loads(extra["gansmith.json"])
    assert usage["gansmith.z_dim"] == "16"
    assert "torch.randn(N, 16, generator=torch.Generator().manual_seed(S))" in usage["gansmith.seed"]
    assert "round((clamp(x, -1, 1) + 1) * 127.5)" in usage["gansmith.pixels"] and "seed:" in out
    # Follow the stored recipe as a user would, without gansmith: the images of `gansmith sample --seed 3`.
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        x = exported(z)
    pixels = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    G, _ = load_generator(trained_run)
    expected = generate_images(G, 5, seed=3)
    assert np.abs(pixels.astype(int) - expected).max() <= 1  # traced vs eager: float round-off may flip a .5


def test_onnx_export_carries_the_recipe_in_its_metadata(trained_run, tmp_path, run_cli):
    onnx = pytest.importorskip("onnx", reason="ONNX export needs the export extra")
    pytest.importorskip("onnxscript", reason="ONNX export needs the export extra")
    pytest.importorskip("onnxruntime", reason="ONNX export needs the export extra")
    code, out, err = run_cli("export", trained_run, "-o", tmp_path / "G.onnx")
    assert code == 0, err
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "G.onnx")).metadata_props}
    assert props["gansmith.z_dim"] == "16" and "manual_seed(S)" in props["gansmith.seed"]
    assert "127.5" in props["gansmith.pixels"] and "N x 1 x 28 x 28" in props["gansmith.output"]


def test_export_without_onnx_packages_says_what_to_install(trained_run, tmp_path, run_cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    code, out, err = run_cli("export", trained_run, "-o", tmp_path / "G.onnx")
    assert code == 2 and "pip install 'gansmith[export]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "G.onnx").exists()


@pytest.mark.parametrize("args, fragment", [
    (["report", "{tmp}"], "not a gansmith run folder"),
    (["report", "{tmp}/nothing"], "not a folder"),
    (["interpolate", "{run}", "-o", "{tmp}/w.gif", "--seeds", "1,x"], "--seeds"),
    (["interpolate", "{run}", "-o", "{tmp}/w.gif", "--seeds", "5"], "at least 2 seeds"),
    (["interpolate", "{run}", "-o", "{tmp}/w.avi"], ".gif or .mp4"),
    (["interpolate", "{run}", "-o", "{tmp}/w.gif", "--frames", "0"], "--frames"),
    (["export", "{run}", "-o", "{tmp}/G.bin"], "--format"),
])
def test_user_mistakes_give_one_line(args, fragment, trained_run, tmp_path, run_cli):
    code, out, err = run_cli(*[a.format(tmp=tmp_path, run=trained_run) for a in args])
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    assert fragment in err
