"""Is the forward map better served through the inverse network?  Scores a saved map's forward map two ways.

A W2GN fit gives two potentials: ``grad psi_theta`` (forward, P -> Q) and ``grad psi_omega`` (inverse, Q -> P), and
on the hard pairs the inverse scores 2-3x lower L2-UVP than the forward. If ``psi_omega`` is the better potential,
its conjugate's gradient ``(grad psi_omega)^{-1}`` may be the better forward map:

    T_refined(x) = argmax_y <x, y> - psi_omega(y),   started at  y0 = grad psi_theta(x)

solved by ``--steps`` L-BFGS steps per row, keeping a row only where it at least halves the residual
``||grad psi_omega(y) - x||`` (the rule the served inverse uses, ``fitted_map._keep_improved_rows``). The script
prints, for each step count, the forward L2-UVP of the amortised and the refined map, the median residual before and
after, and the share of rows kept, as JSON lines (the pair's evaluation samples):

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/frame_ablation.py --family hard --dim 8 --budget 300 --save m.pt
    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/forward_refinement.py m.pt --family hard --dim 8
"""

from __future__ import annotations

import argparse
import json

import torch

from w2gn.conjugate import solve_conjugate
from w2gn.fitted_map import TransportMap, _keep_improved_rows
from w2gn.metrics import l2_uvp
from w2gn.testbeds.pairs import load_pair


def refined_forward(m: TransportMap, x: torch.Tensor, steps: int, batch_size: int = 4096) -> tuple[torch.Tensor, dict]:
    """``(grad psi_omega)^{-1}(x)`` in the user's coordinates, started at ``grad psi_theta(x)``; with statistics."""
    if m.inverse_potential is None:
        raise SystemExit("this map has no inverse potential to refine the forward map on")
    outs, r0s, rs, kept = [], [], [], 0
    for s in range(0, x.shape[0], batch_size):
        t = m._to_source(x[s : s + batch_size].to(m.dtype))
        y0 = m.forward_potential.map(t)
        res = solve_conjugate(m.inverse_potential, t, x0=y0, max_iter=steps, tol=0.0)
        y = _keep_improved_rows(m.inverse_potential, t, y0, res.x)
        with torch.no_grad():
            r0s.append((m.inverse_potential.map(y0) - t).norm(dim=1))
            rs.append((m.inverse_potential.map(y) - t).norm(dim=1))
        kept += int((y != y0).any(dim=1).sum())
        outs.append(m._from_target(y).detach())
    stats = {"median_residual_before": float(torch.cat(r0s).median()), "median_residual_after": float(torch.cat(rs).median()),
             "rows_kept": kept / x.shape[0]}
    return torch.cat(outs), stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("map", help="a saved map of the pair (frame_ablation.py --save, w2gn fit -o)")
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--family", default="hard", choices=["easy", "hard"])
    ap.add_argument("--steps", default="5,20,100", help="comma-separated L-BFGS step counts")
    ap.add_argument("--eval-samples", type=int, default=16_384, help="the first N of the pair's evaluation samples")
    args = ap.parse_args()
    torch.set_num_threads(1)
    pair = load_pair(args.dim, family=args.family)
    m = TransportMap.load(args.map)
    n = args.eval_samples
    x, y = pair._eval["x"][:n], pair._eval["y"][:n]
    amortised = l2_uvp(torch.as_tensor(m.forward(x.to(torch.float32))).to(torch.float64), y, pair.target_variance)
    for k in (int(s) for s in args.steps.split(",")):
        tx, stats = refined_forward(m, x.to(torch.float32), k)
        print(json.dumps({"steps": k, "forward_uvp_amortised": round(amortised, 4),
                          "forward_uvp_refined": round(l2_uvp(tx.to(torch.float64), y, pair.target_variance), 4),
                          **{key: round(v, 5) for key, v in stats.items()}}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
