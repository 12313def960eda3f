"""gansmith.data: every DATA spec type, decoding rules, hostile input, the UserError cases, and streaming."""
import gzip
import io
import itertools
import json
import os
import shutil
import struct
import time
import tracemalloc
import warnings
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image, ImageFile

from gansmith.data import SUPPORTED_RES, DataWarning, ImageData, load_images
from gansmith.data import cache as data_cache, imagedata as imagedata_module, load as load_module, specs
from gansmith.data.decode import Undecodable, bomb_warnings_as_errors, decode_image
from gansmith.data.load import default_res
from gansmith.errors import UserError
from conftest import tiny_config


def image_bytes(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def noise(h=32, w=32, c=3, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def save(path, array_or_image, fmt=None):
    img = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(img, fmt or {".jpg": "JPEG"}.get(path.suffix, path.suffix[1:].upper())))
    return path


def load_quietly(spec, **kwargs) -> ImageData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return load_images(str(spec), progress=False, **kwargs)


def write_idx(path, x: np.ndarray, magic: int, compress=True):
    data = np.array([magic, *x.shape], dtype=">u4").tobytes() + x.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def make_zip(path, members: dict[str, bytes], compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return path


# ---- spec types ------------------------------------------------------------------------------------------

def test_builtin_fashion_mnist_loads_fast_with_known_stats():
    start = time.perf_counter()
    data = load_images("builtin:fashion-mnist", progress=False)
    assert time.perf_counter() - start < 1.0
    assert data.x.shape == (10000, 1, 28, 28) and data.x.dtype == torch.uint8
    assert data.x.is_contiguous() and (data.n, data.res, data.channels) == (10000, 28, 1)
    assert data.x.float().mean().item() == pytest.approx(73.15, abs=0.01)
    assert data.x.float().std().item() == pytest.approx(89.87, abs=0.01)
    assert data.skipped == []
    assert json.loads(json.dumps(data.summary())) == {
        "source": "builtin:fashion-mnist", "n": 10000, "res": 28, "channels": 1, "n_skipped": 0}
    assert load_images("builtin:fashion-mnist", max_images=100, progress=False).n == 100


def test_folder_is_searched_recursively_across_formats_ignoring_hidden(tmp_path):
    for i, name in enumerate(["a.png", "sub/b.jpg", "sub/deeper/c.gif", "d.webp", "sub/e.bmp", "f.jpeg"]):
        save(tmp_path / name, noise(seed=i))
    (tmp_path / ".hidden.png").write_bytes(b"not an image, but hidden")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.png").write_bytes(b"also hidden")
    data = load_images(str(tmp_path), progress=False)
    assert data.x.shape == (6, 3, 32, 32) and data.skipped == []
    assert data.source == str(tmp_path)


def test_png_pixels_survive_exactly_at_native_res(tmp_path):
    pixels = noise(28, 28)
    data = load_images(str(save(tmp_path / "d" / "a.png", pixels).parent), progress=False)
    np.testing.assert_array_equal(data.numpy()[0], pixels)


def test_zip_is_read_in_memory(tmp_path):
    members = {f"imgs/{i}.png": image_bytes(Image.fromarray(noise(seed=i)), "PNG") for i in range(3)}
    members["__MACOSX/imgs/._0.png"] = b"resource fork"
    path = make_zip(tmp_path / "data.zip", members, zipfile.ZIP_DEFLATED)
    before = sorted(tmp_path.rglob("*"))
    data = load_images(str(path), progress=False)
    assert data.x.shape == (3, 3, 32, 32) and data.skipped == []
    assert sorted(tmp_path.rglob("*")) == before


def test_zip_unsafe_entries_are_refused_unread(tmp_path, monkeypatch):
    png = image_bytes(Image.fromarray(noise()), "PNG")
    path = make_zip(tmp_path / "evil.zip", {"../evil.png": png, "/abs.png": png, "a/../../up.png": png,
                                            "C:/win.png": png, "ok.png": png})
    with zipfile.ZipFile(path) as zf:
        assert "/abs.png" in zf.namelist()  # the hostile names really are in the archive
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    before = sorted(tmp_path.parent.rglob("*.png"))
    with pytest.warns(DataWarning, match="skipped 4 of 5 files"):
        data = load_images(str(path), progress=False)
    assert data.n == 1
    assert sorted(data.skipped) == sorted((name, "unsafe path in archive")
                                          for name in ["../evil.png", "/abs.png", "a/../../up.png", "C:/win.png"])
    assert sorted(tmp_path.parent.rglob("*.png")) == before


def test_zip_bombs_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(specs, "MAX_FILE_BYTES", 2**20)
    monkeypatch.setattr(specs, "RATIO_CHECK_BYTES", 2**16)
    png = image_bytes(Image.fromarray(noise()), "PNG")
    path = make_zip(tmp_path / "bomb.zip", {"huge.bmp": bytes(2 * 2**20), "dense.bmp": bytes(2**19), "ok.png": png},
                    zipfile.ZIP_DEFLATED)
    with pytest.warns(DataWarning):
        data = load_images(str(path), progress=False)
    assert data.n == 1
    reasons = dict(data.skipped)
    assert "larger than 1 MiB" in reasons["huge.bmp"] and "compression ratio" in reasons["dense.bmp"]

    monkeypatch.setattr(specs, "MAX_ARCHIVE_BYTES", 2**20)
    with pytest.raises(UserError, match="zip bomb"):
        load_images(str(path), progress=False)


def test_zip_member_with_a_lying_size_is_skipped_in_bounded_memory(tmp_path):
    png = image_bytes(Image.fromarray(noise()), "PNG")
    path = make_zip(tmp_path / "lie.zip", {"a.bmp": bytes(20 * 2**20), "ok.png": png}, zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    data[22:26] = struct.pack("<I", 100)  # uncompressed size in the local header ...
    central = data.find(b"PK\x01\x02")
    data[central + 24:central + 28] = struct.pack("<I", 100)  # ... and in the central directory
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.warns(DataWarning, match=r"a.bmp \(unreadable archive member"):
            assert load_images(str(path), progress=False).n == 1
        assert tracemalloc.get_traced_memory()[1] < 5 * 2**20
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("shape, channels", [((5, 28, 28), 1), ((5, 28, 28, 1), 1), ((5, 28, 28, 3), 3)])
def test_npz_3d_and_4d(tmp_path, shape, channels):
    x = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x)
    data = load_images(str(tmp_path / "d.npz"), progress=False)
    assert data.x.shape == (5, channels, 28, 28)
    np.testing.assert_array_equal(data.numpy(), x.reshape(5, 28, 28, channels))


def test_npz_rgba_is_composited_and_other_sizes_are_resized(tmp_path):
    x = np.zeros((2, 40, 48, 4), np.uint8)
    x[..., 0] = 200  # red where opaque; alpha 0 everywhere except the first image's centre
    x[0, 10:30, 14:34, 3] = 255
    np.savez(tmp_path / "d.npz", x=x)
    data = load_images(str(tmp_path / "d.npz"), progress=False)
    assert data.x.shape == (2, 3, 32, 32)  # shorter side 40 -> res 32
    img = data.numpy()
    assert (img[1] == 255).all()
    assert tuple(img[0, 16, 16]) == (200, 0, 0)


def test_idx_gz_pair_and_uncompressed_idx(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    images = write_idx(tmp_path / "img.gz", x, 0x803)
    labels = write_idx(tmp_path / "lab.gz", np.arange(7), 0x801)
    data = load_images(f"{images},{labels}", progress=False)
    np.testing.assert_array_equal(data.x[:, 0].numpy(), x)
    raw = write_idx(tmp_path / "t-images-idx3-ubyte", x, 0x803, compress=False)
    np.testing.assert_array_equal(load_images(str(raw), progress=False).x[:, 0].numpy(), x)
    short_labels = write_idx(tmp_path / "short.gz", np.arange(6), 0x801)
    with pytest.raises(UserError, match="7 images but 6 labels"):
        load_images(f"{images},{short_labels}", progress=False)
    with pytest.raises(UserError, match="not an IDX images file"):
        load_images(f"{labels},{images}", progress=False)


# ---- decoding rules --------------------------------------------------------------------------------------

def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[:14] = (255, 0, 0, 255)           # opaque red top half
    rgba[14:] = (0, 0, 0, 0)               # fully transparent black bottom half
    rgba[20, 20] = (0, 0, 0, 128)          # half-transparent black
    img = load_images(str(save(tmp_path / "d" / "a.png", rgba).parent), progress=False).numpy()[0]
    assert tuple(img[0, 0]) == (255, 0, 0)
    assert tuple(img[27, 0]) == (255, 255, 255)
    assert tuple(img[20, 20]) == (127, 127, 127)


def test_gray_alpha_and_palette_transparency_become_white(tmp_path):
    la = Image.fromarray(np.stack([np.zeros((28, 28), np.uint8), np.zeros((28, 28), np.uint8)], -1), "LA")
    save(tmp_path / "d" / "la.png", la)
    palette = Image.new("P", (28, 28), 0)
    palette.putpalette([0, 0, 0, 10, 20, 30])
    palette.info["transparency"] = 0
    save(tmp_path / "d" / "p.gif", palette)
    data = load_images(str(tmp_path / "d"), progress=False)
    assert data.channels == 1 and (data.x == 255).all()


def test_cmyk_is_converted_to_rgb(tmp_path):
    cmyk = Image.new("CMYK", (28, 28), (0, 0, 0, 0))
    cmyk.paste((255, 0, 0, 0), (0, 0, 28, 14))  # full cyan on top
    img = load_images(str(save(tmp_path / "d" / "c.tiff", cmyk, "TIFF").parent), progress=False).numpy()[0]
    assert tuple(img[0, 0]) == (0, 255, 255) and tuple(img[27, 27]) == (255, 255, 255)


def test_16_bit_gray_is_scaled_not_clipped(tmp_path):
    a = np.zeros((28, 28), np.uint16)
    a[0, 0], a[0, 1], a[0, 2] = 65535, 128 * 257, 1000
    data = load_images(str(save(tmp_path / "d" / "g.png", Image.fromarray(a)).parent), progress=False)
    assert data.channels == 1
    assert data.x[0, 0, 0, :3].tolist() == [255, 128, 4]


def test_gray_valued_rgb_gives_one_channel_and_any_colour_gives_three(tmp_path):
    gray = np.repeat(noise(c=1), 3, axis=-1)
    save(tmp_path / "gray" / "a.png", gray)
    save(tmp_path / "gray" / "b.jpg", noise(c=1)[..., 0])
    assert load_images(str(tmp_path / "gray"), progress=False).channels == 1
    save(tmp_path / "gray" / "c.png", noise())
    assert load_images(str(tmp_path / "gray"), progress=False).channels == 3


def test_channels_override(tmp_path):
    colour = noise(28, 28)
    save(tmp_path / "c" / "a.png", colour)
    as_gray = load_images(str(tmp_path / "c"), channels=1, progress=False)
    np.testing.assert_array_equal(as_gray.numpy()[0, ..., 0], np.asarray(Image.fromarray(colour).convert("L")))
    save(tmp_path / "g" / "a.png", colour[..., 0])
    as_rgb = load_images(str(tmp_path / "g"), channels=3, progress=False).numpy()[0]
    assert as_rgb.shape == (28, 28, 3) and (as_rgb == colour[..., :1]).all()


@pytest.mark.parametrize("sides, res", [([10], 28), ([28], 28), ([31], 28), ([32], 32), ([63], 32), ([64], 64),
                                        ([1000], 64), ([30, 40, 100], 32), ([20, 30, 200, 300], 64)])
def test_default_res_rule(sides, res):
    assert default_res(sides) == res


def test_default_res_comes_from_the_median_shorter_side(tmp_path):
    for i, (w, h) in enumerate([(300, 20), (40, 90), (100, 100)]):  # shorter sides 20, 40, 100 -> median 40
        save(tmp_path / f"{i}.png", noise(h, w, seed=i))
    assert load_images(str(tmp_path), progress=False).res == 32
    assert load_images(str(tmp_path), res=128, progress=False).x.shape == (3, 3, 128, 128)


def test_crop_keeps_the_centre_and_pad_fills_with_white(tmp_path):
    wide = np.full((32, 96), 255, np.uint8)
    wide[:, 32:64] = 0  # black square in the middle
    folder = save(tmp_path / "d" / "w.png", wide).parent
    cropped = load_images(str(folder), res=32, progress=False).x[0, 0].numpy()
    assert cropped.max() < 10  # only the black square is left
    padded = load_images(str(folder), res=32, fit="pad", progress=False).x[0, 0].numpy()
    assert padded[16, 16] < 10 and padded[2, 16] > 245 and padded[16, 2] > 245
    assert (padded < 128).mean() == pytest.approx(1 / 9, abs=0.03)


# ---- hostile and broken input ----------------------------------------------------------------------------

def test_broken_files_are_skipped_and_named_in_one_warning(tmp_path):
    for i in range(3):
        save(tmp_path / f"good{i}.png", noise(seed=i))
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.png").write_bytes(image_bytes(Image.fromarray(noise(64, 64)), "PNG")[:2000])
    (tmp_path / "c.jpg").write_bytes(image_bytes(Image.fromarray(noise(64, 64)), "JPEG")[:1500])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_images(str(tmp_path), progress=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(messages) == 1 and "skipped 3 of 6 files" in messages[0]
    assert "a.txt (not an image)" in messages[0] and "b.png (truncated)" in messages[0]
    assert "c.jpg (truncated)" in messages[0]
    assert data.n == 3 and len(data.skipped) == 3
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_warning_names_at_most_five_files(tmp_path):
    save(tmp_path / "good.png", noise())
    for i in range(7):
        (tmp_path / f"bad{i}.png").write_bytes(b"junk")
    with pytest.warns(DataWarning, match=r"skipped 7 of 8 files: bad0.png \(not an image\), .* and 2 more$"):
        load_images(str(tmp_path), progress=False)


def test_decompression_bombs_are_skipped_without_touching_warning_filters(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # > 1000 pixels warns, > 2000 raises
    save(tmp_path / "ok.png", noise(20, 20))
    save(tmp_path / "warns.png", noise(40, 40))
    save(tmp_path / "raises.png", noise(100, 100))
    filters_before = list(warnings.filters)
    with pytest.warns(DataWarning):
        data = load_images(str(tmp_path), progress=False)
    assert data.n == 1
    assert sorted(data.skipped) == [("raises.png", "too large (decompression bomb?)"),
                                    ("warns.png", "too large (decompression bomb?)")]
    assert warnings.filters == filters_before


def test_max_images_stops_decoding_early(tmp_path):
    for i in range(5):
        save(tmp_path / f"{i}.png", noise(seed=i))
    data = load_images(str(tmp_path), max_images=2, progress=False)
    assert data.n == 2
    np.testing.assert_array_equal(data.numpy()[1], noise(seed=1))


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    """A folder of inputs that are each a user mistake."""
    root = tmp_path_factory.mktemp("bad")
    (root / "empty").mkdir()
    (root / "hidden_only").mkdir()
    (root / "hidden_only" / ".a.png").write_bytes(b"x")
    (root / "junk").mkdir()
    (root / "junk" / "a.png").write_bytes(b"junk")
    (root / "notes.txt").write_text("hi")
    (root / "bad.npz").write_bytes(b"not a zip")
    (root / "bad.zip").write_bytes(b"not a zip")
    make_zip(root / "empty.zip", {".DS_Store": b"x"})
    np.savez(root / "float.npz", x=np.zeros((2, 8, 8), np.float32))
    np.savez(root / "noX.npz", images=np.zeros((2, 8, 8), np.uint8))
    np.savez(root / "none.npz", x=np.zeros((0, 8, 8), np.uint8))
    (root / "short.gz").write_bytes(gzip.compress(np.array([0x803, 3, 4, 4], ">u4").tobytes() + bytes(30)))
    return root


@pytest.mark.parametrize("spec, kwargs, message", [
    ("missing", {}, "missing: no such file or folder"),
    ("empty", {}, "folder has no files"),
    ("hidden_only", {}, "hidden files and folders are ignored"),
    ("junk", {}, r"no decodable images; skipped 1 of 1 files: a.png \(not an image\)"),
    ("notes.txt", {}, "unsupported file type '.txt'"),
    ("bad.npz", {}, "cannot read .*bad.npz"),
    ("bad.zip", {}, "cannot read .*bad.zip as a zip archive"),
    ("empty.zip", {}, "zip archive has no files"),
    ("float.npz", {}, r"x has dtype float32 and shape \(2, 8, 8\); expected uint8"),
    ("noX.npz", {}, r"has no array x \(found: images\)"),
    ("none.npz", {}, "holds no images"),
    ("short.gz", {}, "short.gz is truncated: expected 48 bytes, found 30"),
    ("short.gz,nolabels.gz", {}, "nolabels.gz: no such file"),
    ("builtin:cifar", {}, "unknown data set 'builtin:cifar'"),
    ("builtin:fashion-mnist", {"res": 30}, "--res 30 is not supported"),
    ("builtin:fashion-mnist", {"fit": "stretch"}, "fit must be one of crop, pad"),
    ("builtin:fashion-mnist", {"channels": 2}, "channels must be 1 or 3"),
])
def test_user_errors_have_clear_one_line_messages(bad_inputs, spec, kwargs, message):
    if not spec.startswith("builtin:"):
        spec = ",".join(str(bad_inputs / part) for part in spec.split(","))
    with pytest.raises(UserError, match=message) as info:
        load_quietly(spec, **kwargs)
    assert "\n" not in str(info.value)


def test_in_memory_limit(monkeypatch, tmp_path):
    monkeypatch.setattr(load_module, "MAX_BYTES", 10000 * 28 * 28 - 1)
    with pytest.raises(UserError, match=r"10000 images of 28x28 would need 0.0073 GiB, more than .* in-memory "
                                        r"limit; an array file .* save the images as a folder or .zip instead"):
        load_images("builtin:fashion-mnist", progress=False)
    for i in range(3):
        save(tmp_path / f"{i}.png", noise(seed=i))
    monkeypatch.setattr(load_module, "MAX_BYTES", 2 * 3 * 32 * 32)
    with pytest.raises(UserError, match=r"3 images of 3x32x32 .* let it stream from disk"):
        load_images(str(tmp_path), progress=False, stream=False)
    assert 0 < load_module.in_memory_limit() <= load_module.MAX_BYTES


def test_image_data_api():
    data = load_images("builtin:fashion-mnist", max_images=50, progress=False)
    array = data.numpy()
    assert array.shape == (50, 28, 28, 1) and array.dtype == np.uint8 and array.flags.c_contiguous
    assert len(data.content_hash()) == 64
    assert data.content_hash() == ImageData(data.x.clone(), "other").content_hash()
    changed = data.x.clone()
    changed[0, 0, 0, 0] ^= 1
    assert ImageData(changed, "x").content_hash() != data.content_hash()
    assert ImageData(data.x.reshape(50, 1, 14, 56)[:, :, :14, :14].contiguous(), "x").content_hash() != \
        ImageData(data.x.reshape(50, 1, 28, 28)[:, :, :14, :14].contiguous(), "x").content_hash()
    with pytest.raises(ValueError):
        ImageData(data.x.float(), "x")
    assert SUPPORTED_RES == (28, 32, 64, 128, 256)


# ---- streaming data sets larger than memory --------------------------------------------------------------

@pytest.fixture
def datasets_dir(tmp_path, monkeypatch):
    """A private cache for the test; returns the folder decoded data sets go to."""
    monkeypatch.setenv("GANSMITH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "datasets"


@pytest.fixture
def mixed_folder(tmp_path):
    """20 files: 18 colour PNGs of several sizes, one gray one and a corrupt one."""
    sizes = [(40, 50), (70, 33), (64, 64), (100, 80), (30, 45), (48, 48)]
    for i in range(18):
        save(tmp_path / "mixed" / f"{i:02d}.png", noise(*sizes[i % len(sizes)], seed=i))
    save(tmp_path / "mixed" / "gray.png", noise(40, 40, c=1, seed=99)[..., 0])
    (tmp_path / "mixed" / "bad.png").write_bytes(b"junk")
    return tmp_path / "mixed"


def cache_folders(datasets_dir):
    return sorted(p.name for p in datasets_dir.iterdir() if p.is_dir()) if datasets_dir.exists() else []


@pytest.mark.parametrize("options", [{}, {"res": 28, "channels": 1}, {"res": 64, "fit": "pad"}])
def test_streaming_gives_the_same_data_as_memory(mixed_folder, datasets_dir, options, monkeypatch):
    in_memory = load_quietly(mixed_folder, stream=False, **options)
    with pytest.warns(DataWarning, match=r"skipped 1 of 20 files: bad.png \(not an image\)"):
        streamed = load_images(str(mixed_folder), progress=False, stream=True, **options)
    assert in_memory.cache_path is None and streamed.cache_path.parent == datasets_dir
    assert torch.equal(streamed.x, in_memory.x)
    assert (streamed.n, streamed.res, streamed.channels) == (in_memory.n, in_memory.res, in_memory.channels)
    assert streamed.skipped == in_memory.skipped == [("bad.png", "not an image")]
    assert streamed.content_hash() == in_memory.content_hash()
    monkeypatch.setattr(imagedata_module, "HASH_CHUNK_BYTES", 5000)  # hash the memory map in several chunks
    assert ImageData(streamed.x, "x").content_hash() == in_memory.content_hash()
    assert streamed.summary() == {**in_memory.summary(), "cache_path": str(streamed.cache_path)}
    assert sorted(p.name for p in streamed.cache_path.iterdir()) == ["meta.json", "pixels.u8"]


def test_a_second_load_reuses_the_cache_and_a_changed_file_invalidates_it(mixed_folder, datasets_dir,
                                                                          monkeypatch):
    first = load_quietly(mixed_folder, stream=True)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(load_module, "_decode_entry", no_decoding)
    again = load_quietly(mixed_folder, stream=True)
    assert again.cache_path == first.cache_path and torch.equal(again.x, first.x)
    assert again.content_hash() == first.content_hash() and again.skipped == first.skipped
    save(mixed_folder / "05.png", noise(seed=123))
    with pytest.raises(AssertionError, match="decoded again"):
        load_quietly(mixed_folder, stream=True)
    assert cache_folders(datasets_dir) == [first.cache_path.name]


def test_an_all_gray_folder_streams_as_one_channel(tmp_path, datasets_dir):
    for i in range(6):
        gray = noise(36, 36, c=1, seed=i)
        save(tmp_path / "g" / f"{i}.png", np.repeat(gray, 3, axis=-1) if i % 2 else gray[..., 0])
    streamed, in_memory = load_quietly(tmp_path / "g", stream=True), load_quietly(tmp_path / "g", stream=False)
    assert streamed.x.shape == (6, 1, 32, 32) and torch.equal(streamed.x, in_memory.x)
    assert streamed.content_hash() == in_memory.content_hash()
    assert (streamed.cache_path / "pixels.u8").stat().st_size == 6 * 32 * 32


def test_a_streamed_default_res_comes_from_the_first_images(tmp_path, datasets_dir, monkeypatch):
    monkeypatch.setattr(load_module, "STREAM_SAMPLE", 3)
    for i in range(7):  # shorter sides 100, 100, 100, 30, 30, 30, 30: median of all 30, of the first three 100
        save(tmp_path / "d" / f"{i}.png", noise(*(2 * [100 if i < 3 else 30]), seed=i))
    assert load_quietly(tmp_path / "d", stream=False).res == 28
    streamed = load_quietly(tmp_path / "d", stream=True)
    assert streamed.x.shape == (7, 3, 64, 64)
    assert torch.equal(streamed.x, load_quietly(tmp_path / "d", res=64, stream=False).x)


def test_streaming_respects_max_images(mixed_folder, datasets_dir):
    streamed = load_quietly(mixed_folder, max_images=5, stream=True)
    assert streamed.n == 5 and torch.equal(streamed.x, load_quietly(mixed_folder, max_images=5, stream=False).x)
    assert load_quietly(mixed_folder, max_images=7, stream=True).cache_path != streamed.cache_path


def test_folders_larger_than_the_memory_limit_stream_automatically(mixed_folder, datasets_dir, monkeypatch):
    assert load_quietly(mixed_folder).cache_path is None
    monkeypatch.setattr(load_module, "in_memory_limit", lambda: 19 * 3 * 64 * 64 - 1)
    streamed = load_quietly(mixed_folder)
    assert streamed.cache_path is not None and streamed.n == 19
    assert load_quietly(mixed_folder, res=28, channels=1).cache_path is None  # small enough at 28 px, gray
    assert load_quietly(mixed_folder, stream=False).cache_path is None


def test_an_interrupted_decode_leaves_no_cache_behind(mixed_folder, datasets_dir, monkeypatch):
    calls = itertools.count()
    decode_entry = load_module._decode_entry

    def interrupted(*args, **kwargs):
        if next(calls) == 10:
            raise KeyboardInterrupt
        return decode_entry(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(load_module, "_decode_entry", interrupted)
        with pytest.raises(KeyboardInterrupt):
            load_quietly(mixed_folder, stream=True)
    assert cache_folders(datasets_dir) == []
    streamed = load_quietly(mixed_folder, stream=True)
    assert torch.equal(streamed.x, load_quietly(mixed_folder, stream=False).x)


def test_leftovers_of_dead_decodes_are_removed(mixed_folder, datasets_dir):
    dead_here = datasets_dir / f".a-1.tmp-999999999@{data_cache.HOST}"
    old_elsewhere = datasets_dir / ".b-2.tmp-1@another-host"
    running_elsewhere = datasets_dir / ".c-3.tmp-1@another-host"
    for folder in (dead_here, old_elsewhere, running_elsewhere):
        folder.mkdir(parents=True)
        (folder / "pixels.u8").write_bytes(b"partial")
    two_days_ago = time.time() - 2 * 24 * 3600
    for path in (old_elsewhere / "pixels.u8", old_elsewhere):
        os.utime(path, (two_days_ago, two_days_ago))
    load_quietly(mixed_folder, stream=True)
    assert sorted(p.name for p in datasets_dir.glob(".*")) == [running_elsewhere.name]


def test_not_enough_disk_space_is_a_clear_error(mixed_folder, datasets_dir, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(free=10_000))
    with pytest.raises(UserError, match=r"not enough disk space .* needs 0.000305 GiB in .*datasets, which has "
                                        r"9.31e-06 GiB free .*GANSMITH_CACHE") as info:
        load_quietly(mixed_folder, stream=True)
    assert "\n" not in str(info.value)
    assert cache_folders(datasets_dir) == []


def test_metrics_read_only_the_rows_they_use_of_a_streamed_set(mixed_folder, datasets_dir, monkeypatch):
    from gansmith import metrics
    in_memory, streamed = load_quietly(mixed_folder, stream=False), load_quietly(mixed_folder, stream=True)
    np.testing.assert_array_equal(streamed.images([2, 0]), in_memory.numpy()[[2, 0]])
    seen = []

    def features(images, **kwargs):
        seen.append(images)
        return np.random.default_rng(len(images)).normal(size=(len(images), 2048)).astype(np.float32)

    def whole_set():
        raise AssertionError("the whole data set was read")

    monkeypatch.setattr(metrics, "compute_features", features)
    monkeypatch.setattr(streamed, "numpy", whole_set)
    metrics.real_features(streamed, 6, cache=False)
    metrics.evaluate(streamed, in_memory.numpy()[:6], ("nn",), n=6, cache=False)
    subset = metrics.subset_indices(streamed.n, 6)
    for images in (seen[0], seen[1]):  # the real images of real_features and of evaluate
        np.testing.assert_array_equal(images, in_memory.numpy()[subset])


def test_training_on_a_streamed_folder_matches_memory_and_resumes_exactly(tiny_npz, tmp_path, datasets_dir,
                                                                          monkeypatch):
    from gansmith.training import train
    from gansmith.training.checkpoint import load_checkpoint
    for i, image in enumerate(np.load(tiny_npz)["x"]):
        save(tmp_path / "squares" / f"{i:02d}.png", image)

    def run(data, out, kimg, resume=False):
        config = tiny_config(data, tmp_path / out, kimg=kimg, depth=None, checkpoint_every=0.032)
        return load_checkpoint(train(config, resume=resume, progress=False).checkpoint)

    in_memory = run(tiny_npz, "memory", 0.064)
    monkeypatch.setattr(load_module, "in_memory_limit", lambda: 0)  # every folder streams
    straight = run(tmp_path / "squares", "straight", 0.064)
    run(tmp_path / "squares", "resumed", 0.032)
    resumed = run(tmp_path / "squares", "resumed", 0.064, resume=True)
    assert json.loads((tmp_path / "straight" / "config.json").read_text())["data"]["cache_path"]
    for key in ("G", "D"):
        for other in (straight, resumed):
            assert all(torch.equal(in_memory[key][k], other[key][k]) for k in in_memory[key]), key


# ---- fuzzing the decoder ---------------------------------------------------------------------------------

VALID = {fmt: image_bytes(Image.fromarray(noise(24, 24, seed=3)), fmt) for fmt in ("PNG", "JPEG", "GIF", "WEBP")}


def assert_decodes_or_is_skipped(data: bytes):
    with bomb_warnings_as_errors():
        try:
            img, shorter_side = decode_image(data, draft_size=28)
        except Undecodable as e:
            assert e.reason
            return
    assert img.mode in ("L", "RGB") and min(img.size) >= 1 and shorter_side >= 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_decoder_survives_random_bytes(data):
    assert_decodes_or_is_skipped(data)


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(sorted(VALID)), st.floats(0, 1), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                                                max_size=3))
def test_decoder_survives_truncated_and_corrupted_images(fmt, keep, flips):
    data = bytearray(VALID[fmt][:int(len(VALID[fmt]) * keep)])
    for where, value in flips:
        if data:
            data[int(where * (len(data) - 1))] = value
    assert_decodes_or_is_skipped(bytes(data))
