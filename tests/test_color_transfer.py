"""Colour transfer (Appendix C.6): streaming application, quality by palette distance, the CLI."""

import json
import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image

from w2gn.applications.color import (
    C6_SETTINGS,
    COLOR_DEFAULTS,
    PixelSampler,
    apply_lut,
    color_lut,
    fit_color_transfer,
    palette_distance,
    recolor,
    sample_pixels,
)
from w2gn.cli import main
from w2gn.fitted_map import TransportMap
from w2gn.io.images import read_rgb, save_rgb
from w2gn.networks import DenseICNN


def _photo(h, w, seed, tint):
    """A smooth synthetic 'photo': gradients plus noise, tinted."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([xx, yy, 0.5 * (xx + yy)], axis=2) * 0.6 + 0.1 * rng.random((h, w, 3))
    img = np.clip(base * np.asarray(tint[0]) + np.asarray(tint[1]), 0, 1)
    return (img * 255).round().astype(np.uint8)


def _random_map(seed=0, hidden=(8, 8)):
    f = DenseICNN(3, list(hidden), rank=3, seed=seed).eval()
    g = DenseICNN(3, list(hidden), rank=3, seed=seed + 1).eval()
    return TransportMap(f, g)


def test_pixel_sampler_draws_colours_in_unit_cube():
    img = _photo(20, 30, 0, ((1, 1, 1), (0, 0, 0)))
    s = PixelSampler(img)
    x = s.sample(500, torch.Generator().manual_seed(0))
    assert x.shape == (500, 3) and x.dtype == torch.float32
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    # every drawn colour is a colour of the image
    colours = {tuple(c) for c in img.reshape(-1, 3)}
    assert all(tuple(c) in colours for c in (x * 255).round().to(torch.uint8).numpy())


@pytest.mark.parametrize("chunk", [7, 1000])
def test_recolor_equals_pixelwise_forward_and_inverse(chunk):
    fitted = _random_map()
    img = _photo(13, 11, 1, ((1, 1, 1), (0, 0, 0)))
    rows = img.reshape(-1, 3).astype(np.float32) / 255
    for inverse, fn in ((False, fitted.forward), (True, fitted.inverse)):
        want = np.rint(np.clip(fn(rows), 0, 1) * 255).astype(np.uint8).reshape(img.shape)
        for dedupe in (True, False):
            got = recolor(fitted, img, inverse=inverse, chunk_pixels=chunk, progress=False, dedupe=dedupe, lut_size=0)
            assert got.dtype == np.uint8 and np.abs(got.astype(int) - want).max() <= 1


@pytest.mark.parametrize("lut_size", [0, 65])
def test_recolor_16bit_input(lut_size):
    fitted = _random_map()
    img16 = (_photo(5, 6, 2, ((1, 1, 1), (0, 0, 0))).astype(np.uint16) * 257)
    img8 = (img16 // 257).astype(np.uint8)
    a = recolor(fitted, img16, progress=False, lut_size=lut_size)
    assert np.abs(a.astype(int) - recolor(fitted, img8, progress=False, lut_size=lut_size)).max() <= 1


@pytest.mark.parametrize("lut_size", [0, 65])
def test_recolor_streams_with_bounded_memory(lut_size):
    """Memory beyond the uint8 output does not grow with the image: 4x the pixels, about the same peak."""
    fitted = _random_map(hidden=(4,))
    extra = []
    for h in (300, 1200):
        img = np.random.default_rng(0).integers(0, 256, (h, 1000, 3), dtype=np.uint8)
        tracemalloc.start()
        out = recolor(fitted, img, chunk_pixels=1 << 14, progress=False, lut_size=lut_size)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert out.shape == img.shape
        extra.append(peak - out.nbytes)
    # a float32 copy of the large image alone would be 14 MB
    assert extra[1] < 1.3 * extra[0] + 1e6 and extra[1] < 10e6, extra


def test_fit_moves_the_palette_towards_the_target():
    """Quality by a number: sliced W2 between the recoloured palette and the target is far below the original one."""
    content = _photo(40, 50, 3, ((0.6, 0.8, 1.2), (0.0, 0.1, 0.2)))  # cold
    palette = _photo(45, 40, 4, ((1.3, 0.7, 0.4), (0.2, 0.05, 0.0)))  # warm
    fitted = fit_color_transfer(content, palette, iterations=150, batch_size=128, hidden=[16, 16, 8],
                                pretrain_iterations=50, lr=3e-3, progress=False)
    out = recolor(fitted, content, progress=False)
    back = recolor(fitted, palette, inverse=True, progress=False)
    c, p = sample_pixels(content, 2000, 0), sample_pixels(palette, 2000, 1)
    before = palette_distance(c, p)
    assert palette_distance(sample_pixels(out, 2000, 0), p) < 0.25 * before
    assert palette_distance(sample_pixels(back, 2000, 1), c) < 0.35 * before


@pytest.fixture(scope="module")
def fitted_colours():
    """A small map fitted between a cold and a warm synthetic photo, and the two photos."""
    content = _photo(40, 50, 3, ((0.6, 0.8, 1.2), (0.0, 0.1, 0.2)))  # cold
    palette = _photo(45, 40, 4, ((1.3, 0.7, 0.4), (0.2, 0.05, 0.0)))  # warm
    fitted = fit_color_transfer(content, palette, iterations=150, batch_size=128, hidden=[16, 16], pretrain_iterations=50,
                                progress=False)
    return fitted, content, palette


def test_color_lut_holds_the_map_at_its_nodes(fitted_colours):
    """Node [i, j, k] of the table is the map at colour (i, j, k) / (n - 1); interpolation reproduces nodes."""
    fitted = fitted_colours[0]
    for inverse, fn in ((False, fitted.forward), (True, fitted.inverse)):
        table = color_lut(fitted, 5, inverse=inverse)
        assert table.shape == (5, 5, 5, 3) and table.dtype == torch.float32
        nodes = np.stack(np.meshgrid(*[np.linspace(0, 1, 5)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
        want = fn(nodes.astype(np.float32))
        assert np.allclose(table.reshape(-1, 3).numpy(), want, atol=1e-5)
        assert np.allclose(apply_lut(table, torch.as_tensor(nodes)).numpy(), want, atol=1e-5)


def test_lut_agrees_with_the_exact_map(fitted_colours):
    """The default table (65^3) and a 33^3 one against the network on every pixel of a random image (colours
    from the whole cube, not only the photos'): at most 1 level anywhere and a mean difference under 0.01
    levels, forward and inverse (measured at 33^3: max 1, mean 0.0003 forward, 0.0007 inverse; a table of
    clipped values, smearing the clip's kink over a cell, was off by up to 4 levels on 1.6 % of the pixels)."""
    fitted = fitted_colours[0]
    img = np.random.default_rng(5).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    assert COLOR_DEFAULTS["lut_size"] == 65
    for inverse in (False, True):
        exact = recolor(fitted, img, inverse=inverse, progress=False, lut_size=0).astype(int)
        for size in (None, 33):  # None: the default, the table
            diff = np.abs(exact - recolor(fitted, img, inverse=inverse, progress=False, lut_size=size))
            assert diff.max() <= 1 and diff.mean() < 0.01, (inverse, size, diff.max(), diff.mean())
    with pytest.raises(Exception, match="lut_size"):
        recolor(fitted, img, lut_size=1, progress=False)


def test_fit_takes_the_colour_defaults_and_ignores_the_apply_keys(fitted_colours):
    fitted = fitted_colours[0]
    cfg = fitted.info["config"]
    assert cfg["precondition"] == COLOR_DEFAULTS["precondition"] and cfg["lr"] == COLOR_DEFAULTS["lr"]
    assert "lut_size" not in cfg
    assert C6_SETTINGS["hidden"] == [128, 128, 64] and C6_SETTINGS["iterations"] == 5000


def test_cli_paper_preset_fills_only_the_defaults():
    from w2gn.cli import build_parser
    from w2gn.cli.color_transfer import apply_paper

    p = build_parser()
    args = p.parse_args(["color-transfer", "c.png", "p.png", "-o", "o.png", "--paper", "--iterations", "300"])
    apply_paper(args)
    assert args.iterations == 300  # set by the user: kept
    assert (args.hidden, args.lr, args.batch_size, args.precondition, args.lut_size, args.lr_schedule) == (
        [128, 128, 64], 1e-3, 1024, "none", 0, "constant")
    plain = p.parse_args(["color-transfer", "c.png", "p.png", "-o", "o.png"])
    apply_paper(plain)
    assert plain.hidden == COLOR_DEFAULTS["hidden"] and plain.lut_size == COLOR_DEFAULTS["lut_size"]


def test_cli_end_to_end_and_reapply_saved_map(tmp_path, capsys):
    save_rgb(tmp_path / "c.png", _photo(24, 32, 5, ((0.6, 0.8, 1.2), (0.0, 0.1, 0.2))))
    # greyscale palette: converted to RGB, not refused
    Image.fromarray(_photo(20, 20, 6, ((1, 1, 1), (0, 0, 0)))[..., 0]).save(tmp_path / "p.png")
    args = [str(tmp_path / "c.png"), str(tmp_path / "p.png"), "-o", str(tmp_path / "out.png"), "--quiet",
            "--iterations", "20", "--batch-size", "64", "--hidden", "8,8", "--pretrain-iterations", "10",
            "--inverse-output", str(tmp_path / "inv.png"), "--save-map", str(tmp_path / "m.pt"),
            "--figure", str(tmp_path / "fig.png"), "--report", str(tmp_path / "r.json"), "--eval-pixels", "500",
            "--figure-pixels", "200"]
    assert main(["color-transfer", *args]) == 0
    assert "palette distance" in capsys.readouterr().out
    rep = json.loads((tmp_path / "r.json").read_text())
    assert {"fit_seconds", "apply_seconds", "sw2_content_palette", "sw2_recolored_palette"} <= set(rep)
    assert read_rgb(tmp_path / "inv.png").shape == (20, 20, 3)
    assert Image.open(tmp_path / "fig.png").format == "PNG"
    # re-apply the saved map without refitting: same image
    assert main(["color-transfer", str(tmp_path / "c.png"), "--map", str(tmp_path / "m.pt"), "-o",
                 str(tmp_path / "again.png"), "--quiet"]) == 0
    assert np.array_equal(read_rgb(tmp_path / "again.png"), read_rgb(tmp_path / "out.png"))
    # an existing output is replaced only with --overwrite
    again = [str(tmp_path / "p.png"), "--map", str(tmp_path / "m.pt"), "-o", str(tmp_path / "again.png"), "--quiet"]
    assert main(["color-transfer", *again]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["color-transfer", *again, "--overwrite"]) == 0
    assert not np.array_equal(read_rgb(tmp_path / "again.png"), read_rgb(tmp_path / "out.png"))
    assert main(["color-transfer", str(tmp_path / "p.png"), "--map", str(tmp_path / "m.pt"), "--direction", "inverse",
                 "-o", str(tmp_path / "inv_again.png"), "--quiet"]) == 0
    assert np.array_equal(read_rgb(tmp_path / "inv_again.png"), read_rgb(tmp_path / "inv.png"))


def test_cli_refuses_to_overwrite_inputs_and_bad_images(tmp_path, capsys):
    c = tmp_path / "c.png"
    save_rgb(c, _photo(8, 8, 7, ((1, 1, 1), (0, 0, 0))))
    before = c.read_bytes()
    assert main(["color-transfer", str(c), str(c), "-o", str(c), "--overwrite", "--quiet"]) == 2
    assert "input" in capsys.readouterr().err and c.read_bytes() == before
    Image.fromarray(np.zeros((4, 4, 4), np.uint8)).save(tmp_path / "t.png")  # fully transparent
    assert main(["color-transfer", str(c), str(tmp_path / "t.png"), "-o", str(tmp_path / "o.png"), "--quiet"]) == 2
    assert "transparent" in capsys.readouterr().err
    assert main(["color-transfer", str(c), "-o", str(tmp_path / "o.png")]) == 2
    assert "PALETTE" in capsys.readouterr().err
    # a saved map of the wrong dimension
    TransportMap(DenseICNN(2, [4]), DenseICNN(2, [4])).save(tmp_path / "m2.pt")
    assert main(["color-transfer", str(c), "--map", str(tmp_path / "m2.pt"), "-o", str(tmp_path / "o.png")]) == 2
    assert "RGB" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()
