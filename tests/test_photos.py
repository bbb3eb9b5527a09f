"""Image reading/writing for colour transfer: conversions, refusals with clear errors, atomic writes."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from w2gn.errors import W2GNUserError
from w2gn.io.photos import full_scale, read_rgb, save_rgb, to_uint8


def load_rgb(path):
    raw = read_rgb(path)
    return raw.astype(np.float32) / full_scale(raw)


def _rgb(h=6, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_png_roundtrip_exact_and_float_range(tmp_path):
    a = _rgb()
    save_rgb(tmp_path / "a.png", a)
    assert np.array_equal(read_rgb(tmp_path / "a.png"), a)
    f = load_rgb(tmp_path / "a.png")
    assert f.dtype == np.float32 and f.shape == a.shape
    assert np.allclose(f * 255, a, atol=1e-3)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_float_input_is_clipped_and_rounded(tmp_path):
    f = np.array([[[-0.5, 0.5, 2.0]]], dtype=np.float64)
    assert to_uint8(f).tolist() == [[[0, 128, 255]]]
    save_rgb(tmp_path / "f.jpg", np.full((8, 8, 3), 0.5))
    assert abs(int(read_rgb(tmp_path / "f.jpg")[0, 0, 0]) - 128) <= 2


def test_greyscale_palette_and_opaque_rgba_are_converted(tmp_path):
    g = np.arange(30, dtype=np.uint8).reshape(5, 6)
    Image.fromarray(g).save(tmp_path / "g.png")
    out = read_rgb(tmp_path / "g.png")
    assert out.shape == (5, 6, 3) and np.array_equal(out[..., 1], g) and np.array_equal(out[..., 2], g)
    a = _rgb()
    Image.fromarray(np.dstack([a, np.full(a.shape[:2], 255, np.uint8)])).save(tmp_path / "o.png")
    assert np.array_equal(read_rgb(tmp_path / "o.png"), a)
    Image.fromarray(a).convert("P").save(tmp_path / "p.png")
    assert read_rgb(tmp_path / "p.png").shape == a.shape


def test_16bit_greyscale_keeps_its_depth(tmp_path):
    g = (np.arange(20, dtype=np.uint16) * 3000).reshape(4, 5)
    Image.fromarray(g).save(tmp_path / "g16.png")
    raw = read_rgb(tmp_path / "g16.png")
    assert raw.dtype == np.uint16 and np.array_equal(raw[..., 0], g)
    assert np.allclose(load_rgb(tmp_path / "g16.png")[..., 2], g / 65535.0, atol=1e-6)


@pytest.mark.parametrize("kind", ["transparent", "float", "text", "missing", "folder", "truncated"])
def test_bad_images_raise_one_clear_error(tmp_path, kind):
    p = tmp_path / "bad.png"
    if kind == "transparent":
        a = np.dstack([_rgb(), np.zeros((6, 5), np.uint8)])
        Image.fromarray(a).save(p)
        match = "transparent"
    elif kind == "float":
        p = tmp_path / "bad.tif"
        Image.fromarray(np.ones((4, 4), np.float32)).save(p)
        match = "floating-point"
    elif kind == "text":
        p.write_text("hello")
        match = "cannot be read as an image"
    elif kind == "missing":
        match = "no such image"
    elif kind == "folder":
        p.mkdir()
        match = "folder"
    else:
        save_rgb(tmp_path / "ok.jpg", _rgb(64, 64))
        p = tmp_path / "bad.jpg"
        p.write_bytes((tmp_path / "ok.jpg").read_bytes()[:200])
        match = "cannot be read"
    with pytest.raises(W2GNUserError, match=match) as info:
        read_rgb(p)
    assert "\n" not in str(info.value) and str(Path(p).name) in str(info.value)


def test_save_rejects_unknown_extension_and_bad_shape(tmp_path):
    with pytest.raises(W2GNUserError, match="extension"):
        save_rgb(tmp_path / "a.xyz", _rgb())
    with pytest.raises(W2GNUserError, match="RGB"):
        save_rgb(tmp_path / "a.png", np.zeros((4, 4)))


PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "color_photos"


@pytest.mark.skipif(not PHOTOS.is_dir(), reason="../shared/data/color_photos not present")
def test_reads_the_shared_colour_photos():
    sizes = {"country_house.jpg": (1300, 866), "forest_road.jpg": (1920, 1121), "autumn.jpg": (1000, 727)}
    for name, (w, h) in sizes.items():
        a = read_rgb(PHOTOS / name)
        assert a.shape == (h, w, 3) and a.dtype == np.uint8 and a.std() > 10
