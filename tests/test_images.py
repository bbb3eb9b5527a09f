"""load_rgb converts every image kind to float RGB in [0, 1] exactly, or refuses with a message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from w2gn.errors import W2GNUserError
from w2gn.io import load_rgb, load_samples, save_rgb


def _rgb():
    return np.random.default_rng(0).integers(0, 256, size=(7, 4, 3), dtype=np.uint8)


def test_rgb_exact(tmp_path):
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    out = load_rgb(tmp_path / "a.png")
    assert out.dtype == np.float32 and out.shape == (7, 4, 3)
    np.testing.assert_array_equal(out, (rgb / 255.0).astype(np.float32))
    np.testing.assert_array_equal(load_samples(tmp_path / "a.png"), out.reshape(-1, 3))


def test_greyscale_8_and_16_bit(tmp_path):
    g = _rgb()[..., 0]
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "g.png"), np.repeat((g / 255.0)[..., None], 3, 2).astype(np.float32))
    g16 = np.array([[0, 1, 65535], [32768, 257, 1000]], dtype=np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    out = load_rgb(tmp_path / "g16.png")
    # 16 bits are kept (not truncated to 8): 1/65535 stays distinguishable from 0
    np.testing.assert_allclose(out[..., 0], g16 / 65535.0, rtol=0, atol=1e-7)
    assert out[0, 1, 0] > 0 and (out[..., 0] == out[..., 2]).all()


def test_palette_with_and_without_transparency(tmp_path):
    rgb = _rgb()
    pal = Image.fromarray(rgb).quantize(colors=16)
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "p.png"), np.asarray(pal.convert("RGB"), np.float32) / 255.0)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pt.png", transparency=0)
    if (np.asarray(Image.open(tmp_path / "pt.png").convert("RGBA"))[..., 3] < 255).any():
        with pytest.raises(W2GNUserError, match="transparent pixels"):
            load_rgb(tmp_path / "pt.png")
        assert load_rgb(tmp_path / "pt.png", alpha="drop").shape == (7, 4, 3)


def test_alpha_policies(tmp_path):
    rgb = _rgb()
    a = np.full(rgb.shape[:2], 255, np.uint8)
    a[0, 0] = 0
    Image.fromarray(np.dstack([rgb, a]), "RGBA").save(tmp_path / "a.png")
    with pytest.raises(W2GNUserError, match=r"a\.png: has transparent pixels \(3\.6% of the image\)"):
        load_rgb(tmp_path / "a.png")
    assert (load_rgb(tmp_path / "a.png", alpha="white")[0, 0] == 1.0).all()
    assert (load_rgb(tmp_path / "a.png", alpha="black")[0, 0] == 0.0).all()
    np.testing.assert_array_equal(load_rgb(tmp_path / "a.png", alpha="drop"), (rgb / 255.0).astype(np.float32))
    Image.fromarray(np.dstack([rgb[..., 0], a]), "LA").save(tmp_path / "la.png")
    with pytest.raises(W2GNUserError, match="transparent"):
        load_rgb(tmp_path / "la.png")


def test_cmyk_jpeg_and_float_tiff(tmp_path):
    Image.fromarray(_rgb()).convert("CMYK").save(tmp_path / "c.jpg")
    out = load_rgb(tmp_path / "c.jpg")
    assert out.shape == (7, 4, 3) and 0 <= out.min() and out.max() <= 1
    Image.fromarray(np.full((3, 3), 0.25, np.float32), "F").save(tmp_path / "f.tif")
    np.testing.assert_allclose(load_rgb(tmp_path / "f.tif"), 0.25)
    Image.fromarray(np.full((3, 3), 7.0, np.float32), "F").save(tmp_path / "f7.tif")
    with pytest.raises(W2GNUserError, match="outside \\[0, 1\\]"):
        load_rgb(tmp_path / "f7.tif")


def test_refusals(tmp_path):
    with pytest.raises(W2GNUserError, match="no such file"):
        load_rgb(tmp_path / "none.png")
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(W2GNUserError, match="empty"):
        load_rgb(tmp_path / "e.png")
    (tmp_path / "t.jpg").write_text("text")
    with pytest.raises(W2GNUserError, match="not an image"):
        load_rgb(tmp_path / "t.jpg")
    with pytest.raises(W2GNUserError, match="alpha must be"):
        load_rgb(tmp_path / "t.jpg", alpha="grey")


def test_save_rgb_round_trip_atomic(tmp_path):
    img = _rgb() / 255.0
    save_rgb(tmp_path / "o.png", img)
    np.testing.assert_array_equal(load_rgb(tmp_path / "o.png"), img.astype(np.float32))
    with pytest.raises(W2GNUserError, match="already exists"):
        save_rgb(tmp_path / "o.png", img)
    with pytest.raises(W2GNUserError, match="NaN"):
        save_rgb(tmp_path / "n.png", np.full((2, 2, 3), np.nan))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]


def test_real_photo_matches_pillow():
    photo = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "color_photos" / "ocean_day.jpg"
    out = load_rgb(photo)
    assert out.shape == (669, 1000, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, np.asarray(Image.open(photo).convert("RGB"), np.float32) / 255.0)
    assert 0.0 <= out.min() and out.max() <= 1.0 and out.std() > 0.05
