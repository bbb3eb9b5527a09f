"""Single images: read_rgb (integer samples) and load_rgb (float [0, 1]) convert every image kind exactly
or refuse with one clear line; save_rgb writes floats or integers atomically with bounded memory."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from w2gn.errors import W2GNUserError
from w2gn.io import full_scale, load_rgb, load_samples, read_rgb, same_file, save_rgb, to_uint8


def _rgb(h=7, w=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# --- reading -------------------------------------------------------------------------------------


def test_rgb_exact_as_integers_and_floats(tmp_path):
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    raw = read_rgb(tmp_path / "a.png")
    assert raw.dtype == np.uint8 and np.array_equal(raw, rgb)
    out = load_rgb(tmp_path / "a.png")
    assert out.dtype == np.float32 and out.shape == (7, 4, 3)
    np.testing.assert_array_equal(out, (rgb / 255.0).astype(np.float32))
    np.testing.assert_array_equal(load_samples(tmp_path / "a.png"), out.reshape(-1, 3))


def test_greyscale_8_and_16_bit(tmp_path):
    g = _rgb()[..., 0]
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    raw = read_rgb(tmp_path / "g.png")
    assert raw.shape == (7, 4, 3) and all(np.array_equal(raw[..., c], g) for c in range(3))
    np.testing.assert_array_equal(load_rgb(tmp_path / "g.png"), np.repeat((g / 255.0)[..., None], 3, 2).astype(np.float32))
    g16 = np.array([[0, 1, 65535], [32768, 257, 1000]], dtype=np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    raw = read_rgb(tmp_path / "g16.png")
    assert raw.dtype == np.uint16 and np.array_equal(raw[..., 0], g16) and np.array_equal(raw[..., 2], g16)
    assert full_scale(raw) == 65535.0
    out = load_rgb(tmp_path / "g16.png")
    # 16 bits are kept (not truncated to 8): 1/65535 stays distinguishable from 0
    np.testing.assert_allclose(out[..., 0], g16 / 65535.0, rtol=0, atol=1e-7)
    assert out[0, 1, 0] > 0 and (out[..., 0] == out[..., 2]).all()


def test_32_bit_integer_images(tmp_path):
    Image.fromarray(np.array([[0, 40000]], np.int32), "I").save(tmp_path / "i.tif")
    assert read_rgb(tmp_path / "i.tif")[0, :, 1].tolist() == [0, 40000]
    assert read_rgb(tmp_path / "i.tif").dtype == np.uint16
    Image.fromarray(np.array([[0, 70000]], np.int32), "I").save(tmp_path / "big.tif")
    with pytest.raises(W2GNUserError, match=r"outside \[0, 65535\]"):
        read_rgb(tmp_path / "big.tif")


def test_palette_and_opaque_alpha_are_converted(tmp_path):
    rgb = _rgb()
    pal = Image.fromarray(rgb).quantize(colors=16)
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "p.png"), np.asarray(pal.convert("RGB")))
    np.testing.assert_array_equal(load_rgb(tmp_path / "p.png"), np.asarray(pal.convert("RGB"), np.float32) / 255.0)
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(tmp_path / "o.png")
    assert np.array_equal(read_rgb(tmp_path / "o.png"), rgb)


def test_palette_transparency_is_not_lost(tmp_path):
    rgb = _rgb()
    pal = Image.fromarray(rgb).quantize(colors=16)
    index = int(np.asarray(pal)[0, 0])
    pal.save(tmp_path / "pt.png", transparency=index)
    with pytest.raises(W2GNUserError, match="transparent pixels"):
        load_rgb(tmp_path / "pt.png")
    assert load_rgb(tmp_path / "pt.png", alpha="drop").shape == (7, 4, 3)
    assert (read_rgb(tmp_path / "pt.png", alpha="black")[0, 0] == 0).all()


def test_trns_chunk_of_grey_and_rgb_pngs_is_transparency(tmp_path):
    g = np.array([[0, 5], [9, 9]], np.uint8)
    Image.fromarray(g).save(tmp_path / "l.png", transparency=5)
    with pytest.raises(W2GNUserError, match=r"transparent pixels \(25\.0%"):
        read_rgb(tmp_path / "l.png")
    assert read_rgb(tmp_path / "l.png", alpha="white")[0, 1].tolist() == [255, 255, 255]
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "r.png", transparency=(0, 0, 0))
    with pytest.raises(W2GNUserError, match="transparent"):
        read_rgb(tmp_path / "r.png")


def test_alpha_policies(tmp_path):
    rgb = _rgb()
    a = np.full(rgb.shape[:2], 255, np.uint8)
    a[0, 0] = 0
    a[0, 1] = 128
    Image.fromarray(np.dstack([rgb, a]), "RGBA").save(tmp_path / "a.png")
    for reader in (read_rgb, load_rgb):
        with pytest.raises(W2GNUserError, match=r"a\.png: has transparent pixels \(7\.1% of the image\)"):
            reader(tmp_path / "a.png")
    assert (load_rgb(tmp_path / "a.png", alpha="white")[0, 0] == 1.0).all()
    assert (load_rgb(tmp_path / "a.png", alpha="black")[0, 0] == 0.0).all()
    np.testing.assert_array_equal(load_rgb(tmp_path / "a.png", alpha="drop"), (rgb / 255.0).astype(np.float32))
    # compositing is rounded back to the integer samples; opaque pixels are untouched
    white = read_rgb(tmp_path / "a.png", alpha="white")
    black = read_rgb(tmp_path / "a.png", alpha="black")
    assert white.dtype == black.dtype == np.uint8
    c = rgb[0, 1].astype(np.float64)
    np.testing.assert_array_equal(white[0, 1], np.rint((c * 128 + 255 * 127) / 255))
    np.testing.assert_array_equal(black[0, 1], np.rint(c * 128 / 255))
    np.testing.assert_array_equal(white[1:], rgb[1:])
    np.testing.assert_array_equal(load_rgb(tmp_path / "a.png", alpha="white"), white / np.float32(255))
    Image.fromarray(np.dstack([rgb[..., 0], a]), "LA").save(tmp_path / "la.png")
    with pytest.raises(W2GNUserError, match="transparent"):
        load_rgb(tmp_path / "la.png")
    assert (read_rgb(tmp_path / "la.png", alpha="white")[0, 0] == 255).all()


def test_exif_orientation_is_applied(tmp_path):
    rgb = _rgb(10, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(rgb).save(tmp_path / "e.png", exif=exif)
    np.testing.assert_array_equal(read_rgb(tmp_path / "e.png"), np.rot90(rgb, k=-1))
    assert load_rgb(tmp_path / "e.png").shape == (20, 10, 3)


def test_cmyk_jpeg_and_float_tiff(tmp_path):
    Image.fromarray(_rgb()).convert("CMYK").save(tmp_path / "c.jpg")
    out = load_rgb(tmp_path / "c.jpg")
    assert out.shape == (7, 4, 3) and 0 <= out.min() and out.max() <= 1
    assert read_rgb(tmp_path / "c.jpg").dtype == np.uint8
    Image.fromarray(np.full((3, 3), 0.25, np.float32), "F").save(tmp_path / "f.tif")
    np.testing.assert_allclose(load_rgb(tmp_path / "f.tif"), 0.25)
    assert load_rgb(tmp_path / "f.tif").dtype == np.float32
    with pytest.raises(W2GNUserError, match="floating-point image.*load_rgb"):
        read_rgb(tmp_path / "f.tif")
    Image.fromarray(np.full((3, 3), 7.0, np.float32), "F").save(tmp_path / "f7.tif")
    with pytest.raises(W2GNUserError, match="outside \\[0, 1\\]"):
        load_rgb(tmp_path / "f7.tif")


@pytest.mark.parametrize("kind", ["transparent", "float", "text", "missing", "folder", "empty", "truncated",
                                  "bad alpha"])
def test_bad_images_raise_one_clear_error(tmp_path, kind):
    p = tmp_path / "bad.png"
    if kind == "transparent":
        Image.fromarray(np.dstack([_rgb(6, 5), np.zeros((6, 5), np.uint8)])).save(p)
        match = r"has transparent pixels \(100\.0% of the image\)"
    elif kind == "float":
        p = tmp_path / "bad.tif"
        Image.fromarray(np.ones((4, 4), np.float32)).save(p)
        match = "floating-point"
    elif kind == "text":
        p.write_text("hello")
        match = "is not an image Pillow can read"
    elif kind == "missing":
        match = "no such file"
    elif kind == "folder":
        p.mkdir()
        match = "is a folder"
    elif kind == "empty":
        p.write_bytes(b"")
        match = "the file is empty"
    elif kind == "truncated":
        save_rgb(tmp_path / "ok.jpg", _rgb(64, 64))
        p = tmp_path / "bad.jpg"
        p.write_bytes((tmp_path / "ok.jpg").read_bytes()[:200])
        match = "damaged or truncated image"
    else:
        Image.fromarray(_rgb()).save(p)
        with pytest.raises(W2GNUserError, match="alpha must be one of"):
            read_rgb(p, alpha="grey")
        with pytest.raises(W2GNUserError, match="alpha must be one of"):
            load_rgb(p, alpha="grey")
        return
    with pytest.raises(W2GNUserError, match=match) as info:
        read_rgb(p)
    assert "\n" not in str(info.value) and p.name in str(info.value)
    if kind != "float":
        with pytest.raises(W2GNUserError, match=match):
            load_rgb(p)


def test_permission_denied_is_a_user_error(tmp_path, monkeypatch):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Image, "open", refuse)
    with pytest.raises(W2GNUserError, match=r"a\.png: cannot be read \(permission denied\)"):
        read_rgb(tmp_path / "a.png")


def test_pixel_limit_replaces_pillows(tmp_path, monkeypatch):
    Image.fromarray(_rgb(40, 30)).save(tmp_path / "a.png")
    with pytest.raises(W2GNUserError, match=r"a\.png: 30x40 = 0 megapixels exceeds the limit"):
        read_rgb(tmp_path / "a.png", max_pixels=1199)
    with pytest.raises(W2GNUserError, match="exceeds the limit"):
        load_rgb(tmp_path / "a.png", max_pixels=1199)
    assert read_rgb(tmp_path / "a.png", max_pixels=1200).shape == (40, 30, 3)
    # Pillow's own decompression-bomb limit would refuse this image; ours decides, and Pillow's is restored
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert read_rgb(tmp_path / "a.png").shape == (40, 30, 3)
    assert Image.MAX_IMAGE_PIXELS == 100


def test_real_photo_matches_pillow():
    photo = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "color_photos" / "ocean_day.jpg"
    out = load_rgb(photo)
    assert out.shape == (669, 1000, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, np.asarray(Image.open(photo).convert("RGB"), np.float32) / 255.0)
    assert 0.0 <= out.min() and out.max() <= 1.0 and out.std() > 0.05


PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "color_photos"


@pytest.mark.skipif(not PHOTOS.is_dir(), reason="../shared/data/color_photos not present")
def test_reads_the_shared_colour_photos():
    sizes = {"country_house.jpg": (1300, 866), "forest_road.jpg": (1920, 1121), "autumn.jpg": (1000, 727)}
    for name, (w, h) in sizes.items():
        a = read_rgb(PHOTOS / name)
        assert a.shape == (h, w, 3) and a.dtype == np.uint8 and a.std() > 10


# --- writing -------------------------------------------------------------------------------------


def test_save_round_trips_integers_and_floats_atomically(tmp_path):
    a = _rgb(6, 5)
    save_rgb(tmp_path / "a.png", a)
    assert np.array_equal(read_rgb(tmp_path / "a.png"), a)
    f = load_rgb(tmp_path / "a.png")
    assert f.dtype == np.float32 and f.shape == a.shape and np.allclose(f * 255, a, atol=1e-3)
    img = _rgb() / 255.0
    save_rgb(tmp_path / "o.png", img)
    np.testing.assert_array_equal(load_rgb(tmp_path / "o.png"), img.astype(np.float32))
    save_rgb(tmp_path / "t.png", torch.from_numpy(img))
    np.testing.assert_array_equal(load_rgb(tmp_path / "t.png"), img.astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "o.png", "t.png"]  # no temporary left behind


def test_save_refuses_to_overwrite_unless_asked(tmp_path):
    save_rgb(tmp_path / "o.png", _rgb())
    with pytest.raises(W2GNUserError, match="already exists"):
        save_rgb(tmp_path / "o.png", _rgb(seed=1))
    assert np.array_equal(read_rgb(tmp_path / "o.png"), _rgb())
    save_rgb(tmp_path / "o.png", _rgb(seed=1), overwrite=True)
    assert np.array_equal(read_rgb(tmp_path / "o.png"), _rgb(seed=1))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_save_refuses_non_finite_values(tmp_path, value):
    img = np.full((2, 2, 3), 0.5)
    img[1, 1, 2] = value
    with pytest.raises(W2GNUserError, match=r"n\.png: refusing to write an image with NaN/inf"):
        save_rgb(tmp_path / "n.png", img)
    assert list(tmp_path.iterdir()) == []


def test_save_rejects_unknown_extension_bad_shape_and_dtype(tmp_path):
    with pytest.raises(W2GNUserError, match="unknown image extension '.xyz'"):
        save_rgb(tmp_path / "a.xyz", _rgb())
    with pytest.raises(W2GNUserError, match="unknown image extension"):
        save_rgb(tmp_path / "a.gif", _rgb())  # GIF would quantise the colours to a palette
    with pytest.raises(W2GNUserError, match=r"expected an \(H, W, 3\) RGB array"):
        save_rgb(tmp_path / "a.png", np.zeros((4, 4)))
    with pytest.raises(W2GNUserError, match=r"expected an \(H, W, 3\) RGB array"):
        save_rgb(tmp_path / "a.png", np.zeros((4, 4, 4)))
    with pytest.raises(W2GNUserError, match="dtype int64"):
        save_rgb(tmp_path / "a.png", np.zeros((4, 4, 3), np.int64))
    with pytest.raises(W2GNUserError, match="folder .* does not exist"):
        save_rgb(tmp_path / "nope" / "a.png", _rgb())
    assert list(tmp_path.iterdir()) == []


def test_save_jpeg_uses_quality_and_16_bit_is_rounded_to_8(tmp_path):
    save_rgb(tmp_path / "f.jpg", np.full((8, 8, 3), 0.5))
    assert abs(int(read_rgb(tmp_path / "f.jpg")[0, 0, 0]) - 128) <= 2
    noisy = _rgb(64, 64)
    save_rgb(tmp_path / "lo.jpg", noisy, quality=10)
    save_rgb(tmp_path / "hi.jpg", noisy, quality=95)
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size / 2
    save_rgb(tmp_path / "g16.png", np.array([[[0, 65535, 32896]]], np.uint16))
    assert read_rgb(tmp_path / "g16.png").tolist() == [[[0, 255, 128]]]


def test_to_uint8_clips_rounds_and_converts_16_bit():
    assert to_uint8(np.array([[[-0.5, 0.5, 2.0]]], dtype=np.float64)).tolist() == [[[0, 128, 255]]]
    assert to_uint8(np.array([[[0, 65535, 257]]], np.uint16)).tolist() == [[[0, 255, 1]]]
    a = _rgb()
    assert to_uint8(a) is a
    with pytest.raises(W2GNUserError, match="NaN/inf"):
        to_uint8(np.full((1, 1, 3), np.nan))


def test_to_uint8_works_in_blocks_without_a_full_float64_copy():
    rng = np.random.default_rng(0)
    a = rng.random((3000, 1000, 3), dtype=np.float32) * 1.2 - 0.1  # 9 M values: spans several blocks
    expected = np.rint(np.clip(a[::997], 0.0, 1.0) * np.float32(255)).astype(np.uint8)
    tracemalloc.start()
    try:
        out = to_uint8(a)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(out[::997], expected)
    assert out[-1].tolist() == np.rint(np.clip(a[-1], 0, 1) * np.float32(255)).astype(np.uint8).tolist()
    # output (9 MB) plus one block; a full-size float32 copy would be 36 MB, a float64 one 72 MB
    assert peak < 0.75 * a.nbytes, f"peak {peak / 1e6:.0f} MB"


def test_same_file(tmp_path, monkeypatch):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    os.symlink(tmp_path / "a.png", tmp_path / "link.png")
    monkeypatch.chdir(tmp_path)
    assert same_file("a.png", tmp_path / "a.png") and same_file(tmp_path / "link.png", "a.png")
    assert not same_file("a.png", tmp_path / "missing.png")
    Image.fromarray(_rgb()).save(tmp_path / "b.png")
    assert not same_file("a.png", "b.png")

