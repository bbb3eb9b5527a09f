"""The bad-input table of RELIABILITY.md: one case per row, through the command line.

Each case checks the exit status (2 = user error), that stderr is one line naming the problem, and
that no output file (nor a temporary one) appeared. Image rows that can be converted faithfully are
checked to give exactly the pixels of the equivalent RGB array.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from w2gn import W2GNSolver
from w2gn import checkpoint as ckpt
from w2gn.cli import main

FIT = ["--iterations", "3", "--batch-size", "8", "--hidden", "4,4", "--pretrain-iterations", "0", "--quiet"]
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    """Tiny fitted maps for D = 2 and D = 3 (the latter for image pixels)."""
    d = tmp_path_factory.mktemp("maps")
    rng = np.random.default_rng(0)
    out = {}
    for dim in (2, 3):
        f = W2GNSolver(iterations=3, batch_size=8, hidden=[4, 4], pretrain_iterations=0, progress=False).fit(
            rng.random((40, dim)), rng.random((40, dim)))
        out[dim] = d / f"map{dim}.pt"
        f.save(out[dim])
    return out


def _run(argv):
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:  # argparse errors
        return exc.code


def _rgb_pixels():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)


# -------------------------------------------------------------------------------------------- rows
#: the default samples of a row's files: 20 rows in D = 2
ONES = np.ones((20, 2))
#: a checkpoint cut short (5 of the 5000 bytes its header announces)
TRUNCATED_CKPT = b"W2GN-CKPT 1 5000 " + b"0" * 64 + b"\nshort"


def _file(t: Path, name: str, content) -> Path:
    """``t/name`` holding ``content``: an array (.npy), text or bytes."""
    path = t / name
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, np.asarray(content))
    return path


def _fit_argv(t, *opts, x=ONES, y=ONES, out="out.pt"):
    """'w2gn fit' from x to y (arrays saved as t/x.npy and t/y.npy, or paths) into t/out, with FIT then opts."""
    xs = x if isinstance(x, Path) else _file(t, "x.npy", x)
    ys = y if isinstance(y, Path) else _file(t, "y.npy", y)
    return ["fit", xs, ys, "-o", t / out, *FIT, *opts]


def _fit_with(*opts, x=ONES, y=ONES):
    """A row: :func:`_fit_argv` of these options and samples."""
    return lambda t, maps: _fit_argv(t, *opts, x=x, y=y)


def _transform_argv(t, maps, source: Path, dim: int = 2, out: Path | None = None):
    """'w2gn transform' of the file ``source`` with the D-dimensional map into ``out`` (t/out.npy)."""
    return ["transform", maps[dim], source, "-o", t / "out.npy" if out is None else out]


def _transform_of(name: str, content, dim: int = 2):
    """A row: :func:`_transform_argv` of the input file ``t/name`` holding ``content`` (see :func:`_file`)."""
    return lambda t, maps: _transform_argv(t, maps, _file(t, name, content), dim)


def _nan_rows():
    x = np.random.default_rng(0).random((20, 2))
    x[3, 1] = np.nan
    return x


def row_unreadable_file(t, maps):
    f = _file(t, "x.npy", np.ones((5, 2)))
    f.chmod(0)  # as root, the row runs as 'nobody' (see _unprivileged), to whom the OS refuses it
    return _transform_argv(t, maps, f)


def row_truncated_image(t, maps):
    Image.fromarray(_rgb_pixels()).save(t / "full.png")
    return _transform_argv(t, maps, _file(t, "x.png", (t / "full.png").read_bytes()[:60]), dim=3)


def row_rgba_transparent_image(t, maps):
    rgba = np.dstack([_rgb_pixels(), np.full((6, 5), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(t / "x.png")
    return _transform_argv(t, maps, t / "x.png", dim=3)


def _checkpoint_folder(t: Path, content: bytes, name: str = "ck") -> Path:
    """``t/name`` holding one checkpoint file with ``content``."""
    (t / name).mkdir()
    _file(t / name, "ckpt-000000010.ckpt", content)
    return t / name


def row_truncated_checkpoint(t, maps):
    return ["resume", _checkpoint_folder(t, TRUNCATED_CKPT)]


def row_truncated_checkpoint_fit(t, maps):
    return _fit_argv(t, "--checkpoint-dir", _checkpoint_folder(t, TRUNCATED_CKPT), "--resume")


def row_foreign_checkpoint(t, maps):
    return ["resume", _checkpoint_folder(t, Path(maps[2]).read_bytes())]  # a map file, not a checkpoint


def row_checkpoints_of_earlier_run(t, maps):
    _checkpoint_folder(t, b"an earlier run's", name="out.pt.ckpt")
    return _fit_argv(t)


def row_truncated_map(t, maps):
    data = Path(maps[2]).read_bytes()
    return ["transform", _file(t, "m.pt", data[: len(data) // 2]), _file(t, "x.npy", np.ones((5, 2))), "-o", t / "out.npy"]


def row_foreign_map(t, maps):
    torch.save({"weights": torch.zeros(3)}, t / "m.pt")
    return ["transform", t / "m.pt", _file(t, "x.npy", np.ones((5, 2))), "-o", t / "out.npy"]


def row_output_read_only_folder(t, maps):
    ro = t / "ro"
    ro.mkdir()
    ro.chmod(0o555)  # as root, the row runs as 'nobody' (see _unprivileged), to whom the OS refuses it
    return _transform_argv(t, maps, _file(t, "x.npy", np.ones((5, 2))), out=ro / "out.npy")


def _precious(name: str, argv):
    """A row: ``argv(t, maps)`` with the output ``t/name`` already there (it must survive)."""
    def row(t, maps):
        _file(t, name, b"precious")
        return argv(t, maps)
    return row


# name -> (build argv, message regex, output that must not appear)
ROWS = {
    "dimension mismatch source/target": (_fit_with(y=np.ones((20, 3))), r"x\.npy has 2 columns but .*y\.npy has 3", "out.pt"),
    "transform input of another dimension": (_transform_of("x.npy", np.ones((20, 3))),
                                             r"x\.npy: has 3 columns but the map is for dimension 2", "out.npy"),
    "NaN in data": (_fit_with(x=_nan_rows()), r"x\.npy: contains NaN or inf values in 1 row", "out.pt"),
    "inf in CSV": (_transform_of("x.csv", "1,2\n3,inf\n5,6\n"), r"x\.csv: contains NaN or inf values in 1 row", "out.npy"),
    "empty file": (_transform_of("x.npy", b""), r"x\.npy: the file is empty", "out.npy"),
    "empty array": (_transform_of("x.npy", np.zeros((0, 2))), r"x\.npy: is empty \(shape \(0, 2\)\)", "out.npy"),
    "1-D array": (_transform_of("x.npy", np.ones(20)), r"x\.npy: expected a 2-D array of samples .* got shape \(20,\)",
                  "out.npy"),
    "non-numeric CSV cell": (_transform_of("x.csv", "a,b\n1.0,2.0\n3.0,abc\n"),
                             r"x\.csv: line 3 has a non-numeric cell 'abc'", "out.npy"),
    # a first line with numbers in it is data, not a header: its text cell is an error, not skipped
    "first line half numeric": (_transform_of("x.csv", "1.0,abc\n1.0,2.0\n3.0,4.0\n"),
                                r"x\.csv: line 1 has a non-numeric cell 'abc'", "out.npy"),
    "one-row source (fit)": (_fit_with(x=np.ones((1, 2))), r"x\.npy: has 1 samples, fewer than the 8 a fit needs", "out.pt"),
    # 4 rows in D = 4 (batch 2): no 4-dimensional distribution is spanned by them
    "fewer rows than dimension + 1 (fit)": (_fit_with("--batch-size", "2", x=np.ones((20, 4)), y=np.ones((4, 4))),
                                            r"y\.npy: has 4 samples, fewer than the 5 a fit needs", "out.pt"),
    # the header notice waits until the input is accepted: a refused file still gives one line
    "header and too few rows (fit)": (lambda t, maps: _fit_argv(t, x=_file(t, "x.csv", "a,b\n1.0,2.0\n3.0,4.0\n")),
                                      r"x\.csv: has 2 samples, fewer than the 8", "out.pt"),
    "fit output not .pt": (lambda t, maps: _fit_argv(t, out="out.xyz"), r"out\.xyz: a fitted map is saved as a \.pt file",
                           "out.xyz"),
    "missing file": (lambda t, maps: _transform_argv(t, maps, t / "nope.npy"), r"nope\.npy: no such file", "out.npy"),
    "unreadable file": (row_unreadable_file, r"x\.npy: cannot be read \(permission denied\)", "out.npy"),
    "unknown extension": (_transform_of("x.xyz", "1,2\n"), r"x\.xyz: unknown file extension '\.xyz'; use one of", "out.npy"),
    "file claiming to be an image": (_transform_of("x.png", "this is not a PNG\n", dim=3),
                                     r"x\.png: is not an image Pillow can read", "out.npy"),
    "truncated image": (row_truncated_image, r"x\.png: (damaged or truncated image|is not an image)", "out.npy"),
    "RGBA image with transparency": (row_rgba_transparent_image, r"x\.png: has transparent pixels \(100\.0% of the image\)",
                                     "out.npy"),
    "truncated checkpoint (resume)": (row_truncated_checkpoint, r"ck: no usable checkpoint: .*truncated checkpoint \(5 of 5000",
                                      None),
    "truncated checkpoint (fit --resume)": (row_truncated_checkpoint_fit, r"no usable checkpoint: .*truncated checkpoint",
                                            "out.pt"),
    "foreign checkpoint": (row_foreign_checkpoint, r"ckpt-000000010\.ckpt: is not a w2gn checkpoint \(a PyTorch/zip file",
                           None),
    "checkpoint folder of an earlier run": (row_checkpoints_of_earlier_run,
                                            r"out\.pt\.ckpt: holds checkpoints of an earlier run .*pass --resume", "out.pt"),
    "truncated map file": (row_truncated_map, r"m\.pt: cannot be read as a w2gn map \(truncated or foreign file", "out.npy"),
    "foreign map file": (row_foreign_map, r"m\.pt: not a w2gn map file", "out.npy"),
    "output in a missing folder": (lambda t, maps: _transform_argv(t, maps, _file(t, "x.npy", np.ones((5, 2))),
                                                                   out=t / "no" / "out.npy"),
                                   r"out\.npy: the folder .*no does not exist", "no/out.npy"),
    "output in a read-only folder": (row_output_read_only_folder, r"out\.npy: the folder .*ro is not writable",
                                     "ro/out.npy"),
    "output exists (transform)": (_precious("out.npy", _transform_of("x.npy", np.ones((5, 2)))),
                                  r"out\.npy: already exists; pass --overwrite", None),
    "output exists (fit)": (_precious("out.pt", _fit_with()), r"out\.pt: already exists; pass --overwrite", None),
    "output exists (gaussian)": (_precious("gaussian_D2.json", lambda t, maps: ["gaussian", "--dim", "2", "--out-dir", t, *FIT]),
                                 r"gaussian_D2\.json: already exists; pass --overwrite", None),
    "negative batch size": (_fit_with("--batch-size", "-5"), r"--batch-size: expected a positive integer, got -5", "out.pt"),
    "zero batch size": (_fit_with("--batch-size", "0"), r"--batch-size: expected a positive integer, got 0", "out.pt"),
    "negative iterations": (_fit_with("--iterations", "-1"), r"--iterations: expected a positive integer, got -1", "out.pt"),
    "NaN learning rate": (_fit_with("--lr", "nan"), r"--lr: expected a positive number, got nan", "out.pt"),
    "non-positive width": (_fit_with("--hidden", "8,0"), r"--hidden: expected comma-separated positive integers", "out.pt"),
    "unknown device": (_fit_with("--device", "tpu"), r"unknown device 'tpu'", "out.pt"),
    "restart factor out of range": (_fit_with("--restart-lr-factor", "2"), r"expected a number in \(0, 1\), got 2",
                                    "out.pt"),
    "resume without checkpoints": (_fit_with("--resume", "--no-checkpoints"), r"--resume needs checkpoints", "out.pt"),
}


#: rows about file permissions: root reads and writes anything, so as root they run as 'nobody'
PERMISSION_ROWS = {"unreadable file", "output in a read-only folder"}


@contextlib.contextmanager
def _unprivileged():
    """Run the block with the real and effective ids of 'nobody' (the saved ids stay root's, to come
    back): the OS then refuses what it refuses a normal user, and os.access, which checks the real
    ids, says so. In-process, because this Python (under /root) cannot be started as 'nobody'."""
    pw = pwd.getpwnam("nobody")
    os.setresgid(pw.pw_gid, pw.pw_gid, 0)
    os.setresuid(pw.pw_uid, pw.pw_uid, 0)
    try:
        yield
    finally:
        os.setresuid(0, 0, 0)
        os.setresgid(0, 0, 0)


@pytest.fixture
def workdir(request, tmp_path, maps):
    """Where a row runs, and its maps: tmp_path, or for a permission row as root a folder 'nobody' can use."""
    if not (ROOT and request.node.callspec.params["row"] in PERMISSION_ROWS):
        yield tmp_path, maps, contextlib.nullcontext
        return
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root and there is no 'nobody' user to drop to")
    t = Path(tempfile.mkdtemp(prefix="w2gn-perm-"))
    t.chmod(0o777)
    shared = {}
    for dim, src in maps.items():
        shared[dim] = t / src.name
        shutil.copyfile(src, shared[dim])
        shared[dim].chmod(0o644)
    try:
        yield t, shared, _unprivileged
    finally:
        for p in t.rglob("*"):
            p.chmod(0o700)
        shutil.rmtree(t)


@pytest.mark.parametrize("row", list(ROWS), ids=list(ROWS))
def test_bad_input_row(row, workdir, capsys):
    """Each row of the bad-input table through the command line (the permission rows through the OS's
    own refusal, also when the tests run as root: shown to fail as root before, where they passed only
    by monkeypatching os.access)."""
    tmp_path, maps, context = workdir
    build, message, output = ROWS[row]
    argv = build(tmp_path, maps)
    before = {p for p in tmp_path.rglob("*")}
    with context():
        code = _run(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("w2gn"), err  # one line, no traceback
    assert "Traceback" not in err
    import re

    assert re.search(message, lines[0]), lines[0]
    if output is not None:
        assert not (tmp_path / output).exists()
    after = {p for p in tmp_path.rglob("*")}
    assert after - before <= {tmp_path / "out.pt.ckpt"}, sorted(map(str, after - before))  # nothing else written
    if row.startswith("output exists"):
        kept = [p for p in tmp_path.iterdir() if p.is_file() and p.suffix in (".pt", ".npy", ".json")]
        assert [p.read_bytes() for p in kept if p.name != "x.npy" and p.name != "y.npy"] == [b"precious"]


# ------------------------------------------------------------------------- images that convert
def _grey(t):
    g = _rgb_pixels()[..., 0]
    Image.fromarray(g, "L").save(t / "in.png")
    return np.repeat(g[..., None], 3, axis=2) / 255.0


def _grey16(t):
    g = (_rgb_pixels()[..., 0].astype(np.uint16) * 257)  # 8-bit value k -> 16-bit 257 k
    Image.fromarray(g).save(t / "in.png")
    assert Image.open(t / "in.png").mode.startswith("I")
    return np.repeat(g[..., None], 3, axis=2) / 65535.0


def _palette(t):
    rgb = _rgb_pixels()
    Image.fromarray(rgb).quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(t / "in.png")
    im = Image.open(t / "in.png")
    assert im.mode == "P"
    return np.asarray(im.convert("RGB")) / 255.0


def _rgba_opaque(t):
    rgb = _rgb_pixels()
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), "RGBA").save(t / "in.png")
    return rgb / 255.0


@pytest.mark.parametrize("make", [_grey, _grey16, _palette, _rgba_opaque], ids=["greyscale", "16-bit", "palette", "RGBA opaque"])
def test_image_kinds_convert_through_the_cli(make, tmp_path, maps, capsys):
    expected = make(tmp_path).reshape(-1, 3)
    assert _run(["transform", maps[3], tmp_path / "in.png", "-o", tmp_path / "out.npy", "--quiet"]) == 0
    assert _run(["transform", maps[3], _file(tmp_path, "ref.npy", expected), "-o", tmp_path / "ref_out.npy", "--quiet"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), np.load(tmp_path / "ref_out.npy"), rtol=1e-6, atol=1e-6)


def test_text_header_is_skipped_and_said(tmp_path, maps, capsys):
    """A first line without numbers is a header: skipped, and the command says so in one line (with the
    same rows as a headerless file). Shown to fail when the notice is removed from io/arrays.py."""
    rows = "1.0,2.0\n3.0,4.0\n5.0,6.5\n"
    (tmp_path / "h.csv").write_text("x,y\n" + rows)
    (tmp_path / "n.csv").write_text(rows)
    assert _run(["transform", maps[2], tmp_path / "h.csv", "-o", tmp_path / "h.npy"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [ln for ln in err if "skipped the header" in ln] == [f"{tmp_path / 'h.csv'}: skipped the header line 'x,y'"]
    assert _run(["transform", maps[2], tmp_path / "n.csv", "-o", tmp_path / "n.npy"]) == 0
    assert "skipped the header" not in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(tmp_path / "h.npy"), np.load(tmp_path / "n.npy"))


def test_overwrite_replaces_and_debug_shows_traceback(tmp_path, maps, capsys):
    x = _file(tmp_path, "x.npy", np.ones((5, 2)))
    (tmp_path / "out.npy").write_bytes(b"old")
    assert _run(["transform", maps[2], x, "-o", tmp_path / "out.npy", "--overwrite", "--quiet"]) == 0
    assert np.load(tmp_path / "out.npy").shape == (5, 2)
    from w2gn.errors import W2GNUserError

    with pytest.raises(W2GNUserError, match="no such file"):
        main(["--debug", "transform", str(maps[2]), str(tmp_path / "nope.npy"), "-o", str(tmp_path / "o2.npy")])


def test_resume_of_python_run_is_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    ckpt.set_run_context()
    W2GNSolver(iterations=2, batch_size=8, hidden=[4, 4], pretrain_iterations=0, progress=False,
               checkpoint_dir=str(tmp_path), checkpoint_every=1).fit(rng.random((10, 2)), rng.random((10, 2)))
    assert _run(["resume", tmp_path]) == 2
    assert "written by a Python program" in capsys.readouterr().err


def test_disk_full_exit_1_and_nothing_half_written(tmp_path, capsys, monkeypatch):
    x = _file(tmp_path, "x.npy", np.random.default_rng(0).random((20, 2)))

    def full(obj, f, *a, **k):
        f.write(b"partial")  # torch.save is given the open temporary file (see atomic_torch_save)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    assert _run(["fit", x, x, "-o", tmp_path / "out.pt", *FIT]) == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "No space left on device" in err and "no partial file was left" in err
    assert "could not write the map out.pt" in err  # tests/test_faults.py fills a real disk
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]  # no map, no temporary file
