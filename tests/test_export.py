"""Exported maps (TorchScript, ONNX) compute the same gradient as the map, without w2gn."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from w2gn import TransportMap, W2GNUserError
from w2gn.cli import main
from w2gn.export import check_export, export_map, load_exported
from w2gn.networks import ConvICNN, DenseICNN

pytestmark = pytest.mark.filterwarnings(r"ignore:.*torch\.jit.*deprecated:DeprecationWarning")


def _map(activation: str = "celu", dtype=torch.float32, rank: int = 2, dim: int = 3) -> TransportMap:
    # untrained but random potentials: export parity is a property of the architecture, not of training
    fwd = DenseICNN(dim, [24, 16, 8], rank=rank, activation=activation, strong_convexity=0.1, seed=1)
    inv = DenseICNN(dim, [24, 16, 8], rank=rank, activation=activation, strong_convexity=0.1, seed=2)
    return TransportMap(fwd, inv, method="w2gn").to(dtype=dtype)


# the exported file must run where w2gn cannot even be imported
_LOADER = textwrap.dedent(
    """
    import sys
    sys.modules["w2gn"] = None  # any 'import w2gn' now raises ImportError
    import numpy as np, torch
    try:
        import w2gn  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("w2gn is importable in the loader process")
    module = torch.jit.load(sys.argv[1])
    x = torch.from_numpy(np.load(sys.argv[2]))
    with torch.no_grad():
        np.save(sys.argv[3], module(x).numpy())
    """
)


@pytest.mark.parametrize("inverse", [False, True])
def test_torchscript_loads_without_w2gn_and_matches(tmp_path, inverse):
    fitted = _map()
    path = export_map(fitted, tmp_path / "map.pt", "torchscript", inverse=inverse)
    x = np.random.default_rng(0).standard_normal((517, 3)).astype(np.float32)  # batch never seen at export (3)
    np.save(tmp_path / "x.npy", x)
    script = tmp_path / "loader.py"
    script.write_text(_LOADER)
    env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
    res = subprocess.run([sys.executable, "-I", str(script), str(path), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    got = np.load(tmp_path / "y.npy")
    want = fitted.inverse(x) if inverse else fitted.forward(x)
    assert got.shape == x.shape and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-5
    extra = {"meta.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    meta = json.loads(extra["meta.json"])
    assert meta["direction"] == ("inverse" if inverse else "forward") and meta["dim"] == 3


@pytest.mark.parametrize("activation", ["celu", "softplus", "relu"])
def test_torchscript_parity_per_activation_and_batch_sizes(tmp_path, activation):
    fitted = _map(activation, rank=1, dim=5)
    path = export_map(fitted, tmp_path / "m.pt")
    run = load_exported(path, "torchscript")
    rng = np.random.default_rng(1)
    for n in (1, 2, 64, 1000):
        x = rng.standard_normal((n, 5)).astype(np.float32)
        assert np.abs(run(x) - fitted.forward(x)).max() < 1e-5


def test_float64_export(tmp_path):
    fitted = _map(dtype=torch.float64)
    path = export_map(fitted, tmp_path / "m64.pt")
    assert check_export(fitted, path, "torchscript", samples=200) < 1e-10


@pytest.mark.parametrize("inverse", [False, True])
def test_onnx_matches_in_onnxruntime(tmp_path, inverse):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    fitted = _map()
    path = export_map(fitted, tmp_path / "m.onnx", "onnx", inverse=inverse)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(2)
    for n in (1, 333):  # export used a batch of 3
        x = rng.standard_normal((n, 3)).astype(np.float32)
        got = session.run(None, {"x": x})[0]
        want = fitted.inverse(x) if inverse else fitted.forward(x)
        assert got.shape == (n, 3) and np.abs(got - want).max() < 1e-5
    props = dict(session.get_modelmeta().custom_metadata_map)
    assert json.loads(props["direction"]) == ("inverse" if inverse else "forward")


def test_what_cannot_be_exported_is_a_user_error(tmp_path):
    no_inverse = TransportMap(DenseICNN(2, [8, 8], seed=0), None, method="mm1")
    with pytest.raises(W2GNUserError, match="no conjugate network"):
        export_map(no_inverse, tmp_path / "a.pt", inverse=True)
    export_map(no_inverse, tmp_path / "a.pt")  # the forward map still exports
    conv = TransportMap(ConvICNN(channels=3, features=4, strided_layers=1, dense=(4,), seed=0))
    with pytest.raises(W2GNUserError, match="Dense ICNN"):
        export_map(conv, tmp_path / "b.pt")
    with pytest.raises(W2GNUserError, match="unknown export format"):
        export_map(no_inverse, tmp_path / "c.pt", format="tflite")


def test_cli_export(tmp_path, capsys, monkeypatch):
    fitted = _map()
    fitted.save(tmp_path / "map.pt")
    assert main(["export", str(tmp_path / "map.pt"), "--quiet"]) == 0
    assert (tmp_path / "map_forward.pt").is_file()
    out = tmp_path / "inv.pt"
    assert main(["export", str(tmp_path / "map.pt"), "-o", str(out), "--inverse", "--dtype", "float64"]) == 0
    assert "max |exported - map|" in capsys.readouterr().err
    run = load_exported(out, "torchscript")
    y = np.random.default_rng(3).standard_normal((10, 3))
    assert np.abs(run(y) - fitted.to(dtype=torch.float64).inverse(y)).max() < 1e-10
    # existing output, missing map, unavailable ONNX: one-line errors, exit status 2
    assert main(["export", str(tmp_path / "map.pt"), "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "x.pt")]) == 2
    monkeypatch.setattr("w2gn.export.onnx_available", lambda: False)
    assert main(["export", str(tmp_path / "map.pt"), "--format", "onnx"]) == 2
    assert "pip install 'w2gn[onnx]'" in capsys.readouterr().err
