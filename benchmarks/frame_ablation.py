"""Which frame (issue 17) to train in: one fit of the ``fit`` preset on a shipped benchmark pair with a
given ``precondition``, under a CPU-second budget; prints forward L2-UVP, the inverse as the amortised
grad psi_omega(y) and (with ``--refine 20``) refined on psi_theta's conjugate, as one JSON line.

    PYTHONPATH=src python benchmarks/frame_ablation.py --dim 16 --precondition diagonal --budget 60
    PYTHONPATH=src python benchmarks/frame_ablation.py --dim 32 --precondition bures --budget 300 --cycle-x
    PYTHONPATH=src python benchmarks/frame_ablation.py --dim 64 --iterations 2000 --history \
        --opts '{"cycle_warmup": 1500, "collapse_limit": 0, "log_every": 100}'     # the run's statistics
    PYTHONPATH=src python benchmarks/frame_ablation.py --family hard --dim 8 --budget 120 --swap   # fit Q -> P, serve reversed
    PYTHONPATH=src python benchmarks/frame_ablation.py --dim 16 --budget 300 --trace 500   # the error along the run

One torch thread; the budget counts this process's CPU seconds (robust on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from w2gn.solvers import TimeBudget, W2GNConfig, W2GNSolver
from w2gn.solvers.presets import preset
from w2gn.testbeds.pairs import load_pair


class _Swapped:
    """A map fitted from Q to P, served in the P -> Q direction (its inverse is the forward map).

    With ``--swap`` the refined column refines the *forward* map (on the Q -> P fit's conjugate)."""

    def __init__(self, fitted) -> None:
        self.fitted = fitted

    def forward(self, x):
        return self.fitted.inverse(x)

    def inverse(self, y):
        return self.fitted.forward(y)


class _GaussianPair:
    """The not-centred random Gaussian pair (``GaussianPair.random(dim, family="offset")``) with a
    :class:`BenchmarkPair`-like ``evaluate``: L2-UVP against the closed-form maps on 20,000 held-out samples."""

    def __init__(self, dim: int) -> None:
        from w2gn.distributions import GaussianPair
        from w2gn.testbeds.gaussian import GaussianEvaluation

        self.gauss = GaussianPair.random(dim, seed=0, family="offset")
        self.source, self.target = self.gauss.source, self.gauss.target
        self.scores = GaussianEvaluation(self.gauss, 20_000, seed=1)

    def evaluate(self, fitted, n: int | None = None) -> dict[str, float]:
        return {"forward_uvp": self.scores.forward(fitted), "inverse_uvp": self.scores.inverse(fitted)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--family", default="easy", choices=["easy", "hard", "gaussian"],
                    help="a shipped benchmark pair, or gaussian: GaussianPair.random(dim, family='offset'), the closed form")
    ap.add_argument("--precondition", default="diagonal", choices=["none", "standardize", "diagonal", "bures"])
    ap.add_argument("--budget", type=float, default=60.0, help="CPU seconds of training")
    ap.add_argument("--refine", type=int, default=20, help="inverse refinement steps to score besides the amortised map")
    ap.add_argument("--cycle-x", action="store_true")
    ap.add_argument("--opts", default="{}", help="JSON of further W2GNConfig overrides")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", default=None, metavar="PATH", help="also save the fitted map there")
    ap.add_argument("--iterations", type=int, default=None, help="a fixed step count instead of the CPU budget")
    ap.add_argument("--history", action="store_true", help="also print the loss and cycle errors of every logged step")
    ap.add_argument("--trace", type=int, default=0, metavar="EVERY",
                    help="also score the map (forward and amortised inverse, 4096 samples) every EVERY steps; "
                         "the scoring's CPU time is not charged to the budget")
    ap.add_argument("--swap", action="store_true",
                    help="fit Q -> P and serve its inverse as the forward map (which network learns which direction)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    pair = _GaussianPair(args.dim) if args.family == "gaussian" else load_pair(args.dim, family=args.family)
    opts = preset("fit", dim=args.dim, iterations=args.iterations or 1_000_000, progress=False, precondition=args.precondition,
                  cycle_x=args.cycle_x, seed=args.seed,
                  **json.loads(args.opts))
    solver = W2GNSolver(W2GNConfig(**opts))
    aim = None
    trace: list[dict] = []
    scoring = [0.0]  # CPU seconds spent scoring the trace, left out of the budget

    def traced(it, current, row):
        if args.trace and it % args.trace == 0:
            t = time.process_time()
            current.conjugate_options.pop("refine_steps", None)  # the amortised inverse: cheap to score
            scores = pair.evaluate(_Swapped(current) if args.swap else current, n=4096)
            trace.append({"iteration": it, "forward_uvp": round(scores["forward_uvp"], 4),
                          "inverse_amortised_uvp": round(scores["inverse_uvp"], 4)})
            print(json.dumps({"trace": trace[-1]}), flush=True)
            scoring[0] += time.process_time() - t
        return None

    if not args.iterations:  # the CPU-second budget ends the run (and its cosine schedule)
        budget, t0 = TimeBudget(solver, args.budget, max_iterations=1_000_000), time.process_time()

        def aim(it, m, row):
            traced(it, m, row)
            return budget.aim(it, time.process_time() - t0 - scoring[0])
    elif args.trace:
        aim = traced
    fitted = solver.fit(*((pair.target, pair.source) if args.swap else (pair.source, pair.target)), callback=aim)
    if args.history:
        for row in fitted.info["history"]:
            print(json.dumps({k: round(float(v), 4) for k, v in row.items() if k == "iteration" or k == "loss" or "cycle" in k}))
    served = _Swapped(fitted) if args.swap else fitted
    amortised = pair.evaluate(served)
    fitted.conjugate_options.update(refine_steps=args.refine, refine_method="lbfgs")
    refined = pair.evaluate(served) if args.refine else amortised
    if args.save:
        fitted.save(args.save)
    print(json.dumps({"dim": args.dim, "family": args.family, "precondition": args.precondition, "cycle_x": args.cycle_x,
                      "opts": json.loads(args.opts), "swap": args.swap,
                      "cpu_s": None if args.iterations else args.budget, "iterations": solver.iteration,
                      "forward_uvp": amortised["forward_uvp"],
                      "inverse_amortised_uvp": amortised["inverse_uvp"], "inverse_refined_uvp": refined["inverse_uvp"],
                      "forward_refined_uvp": refined["forward_uvp"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
