"""Exported maps vs the library map: agreement and inference speed (TorchScript, ONNX Runtime).

For a Dense ICNN map of dimension D, evaluates T(x) = grad psi(x) on N random rows with
(a) ``TransportMap.forward`` (autograd), (b) the TorchScript file loaded with ``torch.jit.load``,
(c) the ONNX file in onnxruntime (if installed), and prints the max abs difference to (a) and the
median time of ``--repeats`` runs.

    python benchmarks/export_speed.py --dims 2 16 64 --batch 10000
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from w2gn import TransportMap
from w2gn.export import export_map, load_exported
from w2gn.networks import DenseICNN
from w2gn.solvers import default_hidden


def timed(fn, x, repeats: int) -> tuple[np.ndarray, float]:
    fn(x[:10])  # warm-up (graph optimisation, allocations)
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn(x)
        times.append(time.perf_counter() - t)
    return np.asarray(out), statistics.median(times)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 16, 64])
    ap.add_argument("--batch", type=int, default=10000, help="rows per call")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    have_onnx = bool(importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime"))
    tmp = Path(tempfile.mkdtemp())
    print("| D | widths | N | backend | max abs diff vs map | median ms | rows/s |")
    print("|---|---|---|---|---|---|---|")
    for d in args.dims:
        hidden = default_hidden(d)
        # random (untrained) weights with a strong quadratic term: the graph's cost does not depend on training
        fitted = TransportMap(DenseICNN(d, hidden, rank=1, strong_convexity=0.1, seed=0))
        x = np.random.default_rng(0).standard_normal((args.batch, d)).astype(np.float32)
        ref, t_ref = timed(fitted.forward, x, args.repeats)
        rows = [("w2gn map (autograd)", ref, t_ref)]
        ts = export_map(fitted, tmp / f"m{d}.pt", "torchscript")
        out, t = timed(load_exported(ts, "torchscript"), x, args.repeats)
        rows.append(("TorchScript", out, t))
        if have_onnx:
            on = export_map(fitted, tmp / f"m{d}.onnx", "onnx")
            out, t = timed(load_exported(on, "onnx"), x, args.repeats)
            rows.append(("ONNX Runtime", out, t))
        for name, out, t in rows:
            err = float(np.abs(out - ref).max())
            print(f"| {d} | {hidden} | {args.batch} | {name} | {err:.1e} | {1000 * t:.1f} | {args.batch / t:,.0f} |")


if __name__ == "__main__":
    main()
