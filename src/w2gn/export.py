"""Export a fitted map as a self-contained artefact that runs without w2gn (TorchScript or ONNX).

A map is ``T = grad psi`` (paper, Section 3), which the library computes with autograd; neither
TorchScript tracing nor ONNX can record an input-gradient. The exported module therefore evaluates
:meth:`~w2gn.networks.DenseICNN.gradient_analytic`, the same gradient written as an explicit backward
pass in plain tensor operations. The artefact takes a float tensor of shape ``(N, D)`` with any
``N`` (dynamic batch dimension) and returns ``grad psi(x)`` of the same shape.

* ``"torchscript"``: ``torch.jit.load(path)(x)`` needs only PyTorch. The file carries a JSON
  description (``meta.json``: method, direction, dimension, dtype, w2gn version).
* ``"onnx"``: opset 17, input ``"x"``, output ``"y"``; runs in ``onnxruntime``. Needs the optional
  extra ``pip install w2gn[onnx]`` (``onnx`` and ``onnxruntime``).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .affine_frame import AffineFrame
from .errors import W2GNUserError
from .fitted_map import TransportMap
from .io.atomic import atomic_path
from .networks import ConvexPotential, DenseICNN

#: artefact formats :func:`export_map` writes
FORMATS = ("torchscript", "onnx")
#: ONNX operator set of the exported graph (supported by every onnxruntime since 1.12)
ONNX_OPSET = 17


class GradientMap(nn.Module):
    """``x -> grad psi(x)`` as a module of plain tensor operations (exportable).

    Holds a frozen copy of a :class:`~w2gn.networks.DenseICNN` in evaluation mode. Shapes:
    ``(N, D) -> (N, D)``. With the map's :class:`~w2gn.affine_frame.AffineFrame`, the graph takes and
    returns the user's coordinates: ``out = c_out + (grad psi((x - c_in) M_in * s_in)) M_out * s_out``
    (forward: ``M_in = N^T``, ``M_out = N``; inverse: ``M_in = N^{-1}``, ``M_out = N^{-T}``).
    """

    def __init__(self, potential: DenseICNN, frame: AffineFrame | None = None, inverse: bool = False) -> None:
        super().__init__()
        if not isinstance(potential, DenseICNN):
            raise W2GNUserError(
                f"export supports Dense ICNN potentials only (it needs the analytic gradient); this map uses "
                f"{type(potential).__name__}"
            )
        self.potential = copy.deepcopy(potential).eval().requires_grad_(False)
        self.framed = frame is not None
        if frame is not None:
            dt = next(potential.parameters()).dtype
            f = frame
            if inverse:
                c_in, m_in, s_in, m_out, s_out, c_out = (f.mean_q, f.matrix_inv, f.scale_q, f.matrix_inv.T,
                                                         1.0 / f.scale_p, f.mean_p)
            else:
                c_in, m_in, s_in, m_out, s_out, c_out = f.mean_p, f.matrix.T, f.scale_p, f.matrix, 1.0 / f.scale_q, f.mean_q
            # scales folded into the matrices: two matrix products and two shifts in the graph
            self.register_buffer("c_in", c_in.to(dt).clone())
            self.register_buffer("m_in", (m_in * s_in).to(dt).contiguous())
            self.register_buffer("m_out", (m_out * s_out).to(dt).contiguous())
            self.register_buffer("c_out", c_out.to(dt).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The map at ``x`` of shape ``(N, D)`` (same dtype as the weights)."""
        if not self.framed:
            return self.potential.gradient_analytic(x)
        g = self.potential.gradient_analytic((x - self.c_in) @ self.m_in)
        return g @ self.m_out + self.c_out


def _potential(fitted: TransportMap, inverse: bool) -> ConvexPotential:
    if not inverse:
        return fitted.forward_potential
    if fitted.inverse_potential is None:
        raise W2GNUserError(
            f"this {fitted.method!r} map has no conjugate network: its inverse is solved numerically (L-BFGS) and "
            "cannot be exported; export the forward map, or fit with method 'w2gn'"
        )
    return fitted.inverse_potential


def gradient_module(fitted: TransportMap, inverse: bool = False) -> GradientMap:
    """The forward (``grad psi_theta``) or inverse (``grad psi_omega``) map of ``fitted`` as a
    :class:`GradientMap` on the CPU, in the map's dtype."""
    return GradientMap(_potential(fitted, inverse), fitted.frame, inverse).to("cpu")


def export_metadata(fitted: TransportMap, inverse: bool = False) -> dict[str, Any]:
    """Plain-data description stored beside the exported graph."""
    from . import __version__

    pot = _potential(fitted, inverse)
    return {
        "producer": f"w2gn {__version__}",
        "method": fitted.method,
        "direction": "inverse" if inverse else "forward",
        "computes": "grad psi_omega(y) (target -> source)" if inverse else "grad psi_theta(x) (source -> target)",
        "dim": int(pot.event_shape[0]),
        "dtype": str(next(pot.parameters()).dtype).replace("torch.", ""),
        "input_shape": ["N", int(pot.event_shape[0])],
    }


def _example(module: GradientMap, batch: int = 3) -> torch.Tensor:
    p = next(module.parameters())
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, module.potential.dim, generator=gen, dtype=p.dtype)


def export_torchscript(fitted: TransportMap, path: str | os.PathLike, inverse: bool = False) -> Path:
    """Write the map as a traced TorchScript module (atomically) and return the path.

    Load with ``torch.jit.load(path)``; call on a tensor ``(N, D)`` of the map's dtype.
    """
    module = gradient_module(fitted, inverse)
    x = _example(module)
    extra = {"meta.json": json.dumps(export_metadata(fitted, inverse))}
    dest = Path(path)
    with _quiet_jit():
        traced = torch.jit.trace(module, x, check_trace=False)
        with atomic_path(dest) as tmp:
            torch.jit.save(traced, str(tmp), _extra_files=extra)
    return dest


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence torch's deprecation notices for torch.jit: TorchScript files are what deployment stacks
    load today, and the traced gradient graph has no data-dependent control flow."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated.*")
        yield


def onnx_available() -> bool:
    """True when both ``onnx`` and ``onnxruntime`` can be imported."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def export_onnx(fitted: TransportMap, path: str | os.PathLike, inverse: bool = False) -> Path:
    """Write the map as an ONNX graph (input ``"x"``, output ``"y"``, dynamic batch) and return the path.

    Run with ``onnxruntime.InferenceSession(path).run(None, {"x": x})[0]``. The metadata of
    :func:`export_metadata` is stored in the model's ``metadata_props``.
    """
    if importlib.util.find_spec("onnx") is None:
        raise W2GNUserError("ONNX export needs the 'onnx' package: pip install 'w2gn[onnx]' (or pip install onnx onnxruntime)")
    import onnx

    module = gradient_module(fitted, inverse)
    x = _example(module)
    dest = Path(path)
    with atomic_path(dest) as tmp, warnings.catch_warnings():
        # the TorchScript-based exporter handles the explicit-gradient graph without onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (x,), str(tmp), dynamo=False, input_names=["x"], output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=ONNX_OPSET,
        )
        model = onnx.load(str(tmp))
        for key, value in export_metadata(fitted, inverse).items():
            model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=json.dumps(value)))
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
    return dest


def export_map(fitted: TransportMap, path: str | os.PathLike, format: str = "torchscript", inverse: bool = False) -> Path:
    """Export ``fitted``'s forward map (or its inverse with ``inverse=True``) to ``path``.

    Parameters
    ----------
    fitted : TransportMap
        A map whose potentials are :class:`~w2gn.networks.DenseICNN` (vector data).
    path : str or PathLike
        Output file; written atomically.
    format : {"torchscript", "onnx"}
        Artefact kind (see the module documentation).
    inverse : bool
        Export ``grad psi_omega`` (target -> source) instead of ``grad psi_theta``; needs a conjugate
        network.

    Returns
    -------
    Path
        ``path``.
    """
    if format not in FORMATS:
        raise W2GNUserError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if format == "onnx":
        return export_onnx(fitted, path, inverse)
    return export_torchscript(fitted, path, inverse)


def load_exported(path: str | os.PathLike, format: str):
    """A callable ``numpy (N, D) -> numpy (N, D)`` over an exported artefact (what a deployment would run).

    Uses only ``torch.jit.load`` or ``onnxruntime``, never w2gn's own classes.
    """
    import numpy as np

    if format == "torchscript":
        with _quiet_jit():
            module = torch.jit.load(str(path), map_location="cpu")

        def run_ts(x):
            with torch.no_grad():
                return module(torch.from_numpy(np.ascontiguousarray(x))).numpy()

        return run_ts
    if importlib.util.find_spec("onnxruntime") is None:
        raise W2GNUserError("running an ONNX map needs 'onnxruntime': pip install 'w2gn[onnx]'")
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"x": np.ascontiguousarray(x)})[0]


def check_export(fitted: TransportMap, path: str | os.PathLike, format: str, inverse: bool = False,
                 samples: int = 1000, seed: int = 0) -> float:
    """Largest absolute difference between the exported artefact and the map on ``samples`` inputs.

    Inputs are standard-normal draws (seeded by ``seed``) in the map's dtype, with an odd batch size
    (``samples | 1``) so that a batch size never seen at export exercises the dynamic dimension.
    """
    import numpy as np

    pot = _potential(fitted, inverse)
    dim = int(pot.event_shape[0])
    dtype = np.float64 if next(pot.parameters()).dtype == torch.float64 else np.float32
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((int(samples) | 1, dim)).astype(dtype)
    want = fitted.inverse(x) if inverse else fitted.forward(x)
    got = load_exported(path, format)(x)
    return float(np.abs(np.asarray(got, dtype=np.float64) - want).max())


__all__ = ["FORMATS", "ONNX_OPSET", "GradientMap", "gradient_module", "export_metadata", "export_map",
           "export_torchscript", "export_onnx", "onnx_available", "load_exported", "check_export"]
