"""Sample files and the command line: formats, bad input, end-to-end fit/transform/gaussian."""

import json

import numpy as np
import pytest
import torch

from w2gn import TransportMap, W2GNUserError
from w2gn.cli import main
from w2gn.io import load_samples, save_samples


@pytest.mark.parametrize("ext", [".npy", ".npz", ".csv", ".txt", ".tsv", ".pt"])
def test_roundtrip_every_format(tmp_path, ext):
    arr = np.random.randn(20, 3)
    p = save_samples(tmp_path / f"a{ext}", arr)
    assert np.allclose(load_samples(p), arr, atol=1e-7)


def test_csv_with_header_is_read(tmp_path):
    (tmp_path / "h.csv").write_text("x,y\n1,2\n3,4\n")
    assert load_samples(tmp_path / "h.csv").tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("empty.csv", "", "empty"),
        ("bad.csv", "1,2\n3,oops\n", "non-numeric cell 'oops'"),
        ("ragged.csv", "1,2\n3\n", "different numbers of columns"),
        ("nan.csv", "1,2\nnan,4\n", "NaN or inf"),
        ("data.xyz", "1,2\n", "unknown file extension"),
        ("garbage.npy", "not numpy", "cannot be read"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, name, content, match):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(W2GNUserError, match=match):
        load_samples(p)


def test_missing_file_and_1d_array(tmp_path):
    with pytest.raises(W2GNUserError, match="no such file"):
        load_samples(tmp_path / "nope.npy")
    np.save(tmp_path / "one.npy", np.arange(5.0))
    with pytest.raises(W2GNUserError, match="2-D"):
        load_samples(tmp_path / "one.npy")


def test_cli_fit_then_transform_roundtrip(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(400, 2)))
    np.savetxt(tmp_path / "y.csv", rng.normal(size=(400, 2)) * 0.5 + 2, delimiter=",")
    rc = main(["fit", str(tmp_path / "x.npy"), str(tmp_path / "y.csv"), "-o", str(tmp_path / "m.pt"),
               "--iterations", "200", "--pretrain-iterations", "100", "--batch-size", "128", "--quiet"])
    assert rc == 0
    fitted = TransportMap.load(tmp_path / "m.pt")
    rc = main(["transform", str(tmp_path / "m.pt"), str(tmp_path / "x.npy"), "-o", str(tmp_path / "tx.npy"), "--quiet"])
    assert rc == 0
    tx = np.load(tmp_path / "tx.npy")
    assert np.allclose(tx, fitted.forward(np.load(tmp_path / "x.npy").astype(np.float32)), atol=1e-6)
    assert abs(tx.mean() - 2) < 0.5  # moved towards the target
    rc = main(["transform", str(tmp_path / "m.pt"), str(tmp_path / "y.csv"), "-o", str(tmp_path / "iy.csv"),
               "--inverse", "--quiet"])
    assert rc == 0 and load_samples(tmp_path / "iy.csv").shape == (400, 2)


def test_cli_user_errors_exit_2_with_one_line_and_no_output(tmp_path, capsys):
    np.save(tmp_path / "x2.npy", np.random.randn(50, 2))
    np.save(tmp_path / "x3.npy", np.random.randn(50, 3))
    out = tmp_path / "m.pt"
    rc = main(["fit", str(tmp_path / "x2.npy"), str(tmp_path / "x3.npy"), "-o", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("w2gn: error:") and "columns" in err[0]
    assert not out.exists()
    rc = main(["fit", str(tmp_path / "missing.npy"), str(tmp_path / "x2.npy"), "-o", str(out), "--quiet"])
    assert rc == 2 and "no such file" in capsys.readouterr().err
    out.write_text("keep me")
    rc = main(["fit", str(tmp_path / "x2.npy"), str(tmp_path / "x2.npy"), "-o", str(out), "--quiet"])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err and out.read_text() == "keep me"
    rc = main(["fit", str(tmp_path / "x2.npy"), str(tmp_path / "x2.npy"), "-o", str(tmp_path / "no" / "m.pt")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def test_cli_transform_dimension_mismatch(tmp_path, capsys):
    from w2gn.networks import DenseICNN

    TransportMap(DenseICNN(2, [4], seed=0)).save(tmp_path / "m.pt")
    np.save(tmp_path / "x3.npy", np.random.randn(5, 3))
    rc = main(["transform", str(tmp_path / "m.pt"), str(tmp_path / "x3.npy"), "-o", str(tmp_path / "o.npy")])
    assert rc == 2 and "dimension 2" in capsys.readouterr().err
    assert not (tmp_path / "o.npy").exists()


def test_cli_rejects_nonsense_option_values(capsys):
    with pytest.raises(SystemExit) as e:
        main(["gaussian", "--batch-size", "0"])
    assert e.value.code == 2 and "positive integer" in capsys.readouterr().err


def test_cli_gaussian_writes_report_and_plot(tmp_path):
    rc = main(["gaussian", "--dim", "2", "--iterations", "200", "--pretrain-iterations", "100", "--batch-size", "128",
               "--log-every", "100", "--eval-samples", "2000", "--out-dir", str(tmp_path), "--quiet"])
    assert rc == 0
    rep = json.loads((tmp_path / "gaussian_D2.json").read_text())
    assert rep["l2_uvp_forward"] < rep["l2_uvp_identity"] / 5
    assert len(rep["curve"]) == 2
    assert (tmp_path / "gaussian_D2.png").read_bytes()[:4] == b"\x89PNG"


def test_every_subcommand_has_help(capsys):
    import argparse

    from w2gn.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert {"gaussian", "fit", "transform"} <= set(sub.choices)
    for name in sub.choices:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0, name
        assert "usage" in capsys.readouterr().out


def test_python_m_w2gn_runs():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "w2gn", "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "w2gn" in r.stdout
    assert torch.__version__
