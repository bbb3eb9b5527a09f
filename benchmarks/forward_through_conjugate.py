"""Ablation (issue 18): is the forward map better taken through psi_omega's conjugate?

With the two-sided objective the amortised inverse grad psi_omega(y) is often more accurate than the forward
grad psi_theta(x) (hard D = 4 pair, 120 CPU-s: 0.08 % against 0.27 % L2-UVP). This fits the ``fit`` preset on a
shipped pair under a CPU-second budget and scores the forward map three ways against the true map: the
amortised grad psi_theta(x), and argmax_y <x, y> - psi_omega(y) (the inverse of grad psi_omega) by 5 / 20 / 100
L-BFGS steps started at grad psi_theta(x). Prints one JSON line.

    PYTHONPATH=src python benchmarks/forward_through_conjugate.py --dim 4 --family hard --budget 120

One torch thread; the budget counts this process's CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from w2gn.conjugate import solve_conjugate
from w2gn.metrics import l2_uvp
from w2gn.solvers import TimeBudget, W2GNConfig, W2GNSolver
from w2gn.solvers.presets import preset
from w2gn.testbeds.pairs import load_pair


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=4)
    ap.add_argument("--family", default="hard", choices=["easy", "hard"])
    ap.add_argument("--budget", type=float, default=120.0, help="CPU seconds of training")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=16384, help="evaluation samples of P")
    args = ap.parse_args()
    torch.set_num_threads(1)
    pair = load_pair(args.dim, family=args.family)
    solver = W2GNSolver(W2GNConfig(**preset("fit", dim=args.dim, iterations=1_000_000, progress=False, seed=args.seed)))
    budget = TimeBudget(solver, args.budget, max_iterations=1_000_000)
    t0 = time.process_time()
    fitted = solver.fit(pair.source, pair.target, callback=lambda it, m, row: budget.aim(it, time.process_time() - t0))
    scores = pair.evaluate(fitted)
    x = pair.source.sample(args.samples, torch.Generator().manual_seed(123)).to(fitted.dtype)
    y_true = pair.forward_map(x.double()).to(fitted.dtype)
    xt = fitted._to_source(x)  # the training frame's coordinates, where the potentials live
    y0 = fitted.forward_potential.map(xt, 8192)
    out = {"dim": args.dim, "family": args.family, "cpu_s": args.budget, "iterations": solver.iteration,
           "forward_uvp": scores["forward_uvp"], "inverse_uvp": scores["inverse_uvp"],
           "forward_amortised_uvp": l2_uvp(fitted._from_target(y0), y_true, pair.target_variance)}
    for steps in (5, 20, 100):
        res = solve_conjugate(fitted.inverse_potential, xt, x0=y0, max_iter=steps, tol=0.0)
        out[f"forward_through_omega_{steps}_uvp"] = l2_uvp(fitted._from_target(res.x.detach()), y_true, pair.target_variance)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
