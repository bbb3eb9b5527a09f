"""Compare the registered OT solvers on a Gaussian pair, where the optimal map is known in closed form.

For Gaussians P = N(m1, S1) and Q = N(m2, S2) the optimal map is affine, so each fitted map can be
scored exactly: L2-UVP (paper, eq. 16) = 100 * E||T(x) - T*(x)||^2 / Var(Q), in percent.

Run:  python examples/compare_methods.py                  (every registered method; ~1 min)
      python examples/compare_methods.py --methods w2gn --dim 4 --quick
"""

from __future__ import annotations

import argparse
import time

from w2gn import GaussianPair
from w2gn.solvers import SOLVERS, get_solver
from w2gn.testbeds import GaussianEvaluation


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="*", default=None, help=f"methods to compare (default: all of {sorted(SOLVERS)})")
    ap.add_argument("--dim", type=int, default=4, help="dimension of the Gaussians")
    ap.add_argument("--iterations", type=int, default=1000, help="training steps per method")
    ap.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    args = ap.parse_args(argv)
    iterations = 40 if args.quick else args.iterations
    methods = args.methods or sorted(SOLVERS)

    pair = GaussianPair.random(args.dim, seed=0)  # random means and covariances, closed-form T*
    ev = GaussianEvaluation(pair, 4000, seed=1)  # held-out evaluation points and their true images
    rows = []
    # the identity "map" as a reference: what not transporting at all scores
    rows.append(("identity", ev.identity(), 0.0))
    for name in methods:
        options = dict(iterations=iterations, batch_size=256, seed=0, progress=False)
        if name == "w2gn":
            options["pretrain_iterations"] = min(300, iterations)
        solver = get_solver(name, **options)
        start = time.perf_counter()
        fitted = solver.fit(pair.source, pair.target)  # samplers are accepted as well as arrays
        seconds = time.perf_counter() - start
        uvp = ev.forward(fitted)
        rows.append((name, uvp, seconds))

    print(f"Gaussian pair, D = {args.dim}, {iterations} iterations per method")
    print(f"| {'method':<10} | {'L2-UVP %':>9} | {'fit s':>6} |")
    print(f"|{'-' * 12}|{'-' * 11}|{'-' * 8}|")
    for name, uvp, seconds in rows:
        print(f"| {name:<10} | {float(uvp):>9.2f} | {seconds:>6.1f} |")


if __name__ == "__main__":
    main()
