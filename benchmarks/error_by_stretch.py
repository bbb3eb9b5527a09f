"""Where a fitted map's error sits, against how much the true map stretches there (issue 18, item 3).

The W2 dual weights an error ``delta`` of the forward map at ``x`` by about ``delta^T (Hess psi(x))^-1 delta``
(its second variation around the optimum), so where the true map ``grad psi`` stretches (large eigenvalues of
``Hess psi``) the objective barely sees the forward map's error; the inverse's error is weighted by ``Hess
psi`` itself, the other way round. This script tests that reading on a benchmark pair: it bins the pair's fixed
evaluation samples by the largest eigenvalue of the true map's Jacobian (``Hess psi(x)``, by central finite
differences in float64) and reports, per bin, the share of the samples and of the forward squared error (at
``x``) and of the inverse squared error (at ``y = grad psi(x)``).

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/frame_ablation.py --family hard --dim 8 --budget 300 --save /tmp/m8.pt
    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/error_by_stretch.py --family hard --dim 8 --map /tmp/m8.pt

Prints a Markdown table and one JSON line.
"""

from __future__ import annotations

import argparse
import json

import torch
from _shared import ForwardOnly

from w2gn import TransportMap
from w2gn.testbeds.pairs import load_pair


def jacobian_top_eigenvalue(forward, x: torch.Tensor, h: float = 1e-4) -> torch.Tensor:
    """Largest eigenvalue of the symmetrised Jacobian of ``forward`` at each row of ``x`` (float64, (n, D))."""
    n, d = x.shape
    cols = []
    for i in range(d):
        e = torch.zeros(d, dtype=x.dtype)
        e[i] = h
        cols.append((forward(x + e) - forward(x - e)) / (2 * h))
    jac = torch.stack(cols, dim=2)  # (n, D, D): column i = d T / d x_i
    sym = 0.5 * (jac + jac.transpose(1, 2))
    return torch.linalg.eigvalsh(sym)[:, -1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="hard", choices=["easy", "hard"])
    ap.add_argument("--dim", type=int, default=8)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--map", help="a saved fitted map (TransportMap.save) for this pair")
    src.add_argument("--potential", help="a potential saved by benchmarks/oracle_regression.py --save (forward only)")
    ap.add_argument("--bins", type=int, default=5, help="quantile bins of the stretch")
    ap.add_argument("--samples", type=int, default=16384)
    args = ap.parse_args()
    torch.set_num_threads(1)
    pair = load_pair(args.dim, family=args.family)
    fitted = TransportMap.load(args.map) if args.map else ForwardOnly.load(args.potential)
    ev = pair._eval
    x, y = ev["x"][: args.samples], ev["y"][: args.samples]
    stretch = jacobian_top_eigenvalue(pair.forward_map, x)
    with torch.no_grad():
        fx = torch.as_tensor(fitted.forward(x.float())).double()
        gy = torch.as_tensor(fitted.inverse(y.float())).double()
    fwd_err = (fx - y).square().sum(1)
    inv_err = (gy - x).square().sum(1)
    edges = torch.quantile(stretch, torch.linspace(0, 1, args.bins + 1, dtype=torch.float64))
    rows = []
    for b in range(args.bins):
        lo, hi = edges[b], edges[b + 1]
        m = (stretch >= lo) & ((stretch <= hi) if b == args.bins - 1 else (stretch < hi))
        rows.append({"stretch_lo": float(lo), "stretch_hi": float(hi), "share": float(m.double().mean()),
                     "forward_share": float(fwd_err[m].sum() / fwd_err.sum()),
                     "inverse_share": float(inv_err[m].sum() / inv_err.sum()),
                     "forward_uvp": 100 * float(fwd_err[m].mean()) / pair.target_variance,
                     "inverse_uvp": 100 * float(inv_err[m].mean()) / pair.source_variance})
    fwd_all = 100 * float(fwd_err.mean()) / pair.target_variance
    inv_all = 100 * float(inv_err.mean()) / pair.source_variance
    print(f"pair {pair.name}, map {args.map or args.potential}: forward L2-UVP {fwd_all:.3f} %, "
          f"inverse {inv_all:.3f} % on {x.shape[0]} samples")
    print("| stretch (top eigenvalue of Hess psi) | samples | share of forward error | forward L2-UVP in bin % "
          "| share of inverse error | inverse L2-UVP in bin % |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['stretch_lo']:.2f} - {r['stretch_hi']:.2f} | {r['share']:.0%} | {r['forward_share']:.0%} | "
              f"{r['forward_uvp']:.3f} | {r['inverse_share']:.0%} | {r['inverse_uvp']:.3f} |")
    print(json.dumps({"pair": pair.name, "map": args.map or args.potential, "bins": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
