"""Does ``w2gn fit`` care where the data sit? The ``fit`` preset on samples of a shipped benchmark pair as
given, and on the same samples moved and rescaled (``x' = a x + b``, ``y' = c y + d``: scalars ``a = 2.5``,
``c = 0.4``, offsets up to 10 per coordinate), under the same CPU-second budget. Both fitted maps are scored
against the pair's true maps in the pair's own coordinates: ``T(x) = (T'(a x + b) - d) / c`` and
``S(y) = (S'(c y + d) - b) / a``. A fit that does not care where the data sit scores the same on both rows,
up to seed noise.

The scales are one number per side on purpose: ``|x' - y'|^2 = const(x) + const(y) - 2 a c <x, y>``, so the
optimal coupling, hence the OT map read back in the pair's coordinates, is unchanged only for ``a c > 0``
scalars. A different scale per coordinate changes the OT problem itself (the map is not equivariant to it).

    PYTHONPATH=src python benchmarks/shifted_pair.py --family hard --dim 8 --budget 120

One torch thread; the budget counts this process's CPU seconds. Prints one JSON line per row.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _shared import MOVE_SCALES, move_offsets

from w2gn.distributions import TensorSampler
from w2gn.solvers import TimeBudget, W2GNConfig, W2GNSolver
from w2gn.solvers.presets import preset
from w2gn.testbeds.pairs import load_pair


class Unmoved:
    """A fitted map trained on moved data, read back in the pair's coordinates."""

    def __init__(self, fitted, a, b, c, d) -> None:
        self.fitted, self.a, self.b, self.c, self.d = fitted, a, b, c, d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.fitted.forward(x * self.a + self.b) - self.d) / self.c

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (self.fitted.inverse(y * self.c + self.d) - self.b) / self.a


def fit_for(p: torch.Tensor, q: torch.Tensor, cpu_seconds: float, seed: int, opts: dict):
    """The ``fit`` preset on the two sample arrays for ``cpu_seconds`` of this process's CPU time."""
    solver = W2GNSolver(W2GNConfig(**preset("fit", dim=p.shape[1], iterations=1_000_000, progress=False, seed=seed,
                                            **opts)))
    budget = TimeBudget(solver, cpu_seconds, max_iterations=1_000_000)
    t0 = time.process_time()
    fitted = solver.fit(TensorSampler(p), TensorSampler(q),
                        callback=lambda it, m, row: budget.aim(it, time.process_time() - t0))
    return fitted, solver.iteration


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=8)
    ap.add_argument("--family", default="hard", choices=["easy", "hard"])
    ap.add_argument("--budget", type=float, default=120.0, help="CPU seconds of training per fit")
    ap.add_argument("--samples", type=int, default=50_000, help="samples per side (as a user's data set)")
    ap.add_argument("--opts", default="{}", help="JSON of further W2GNConfig overrides")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    pair = load_pair(args.dim, family=args.family)
    g = torch.Generator().manual_seed(1000 + args.seed)
    x = pair.source.sample(args.samples, g).float()
    y = pair.target.sample(args.samples, g).float()
    dim = args.dim
    b, d = move_offsets(dim)
    moves = {"as given": (1.0, torch.zeros(dim), 1.0, torch.zeros(dim)),
             "moved and rescaled": (MOVE_SCALES[0], b, MOVE_SCALES[1], d)}
    for label, (sa, sb, sc, sd) in moves.items():
        fitted, iterations = fit_for(x * sa + sb, y * sc + sd, args.budget, args.seed, json.loads(args.opts))
        scores = pair.evaluate(Unmoved(fitted, sa, sb, sc, sd))
        print(json.dumps({"pair": pair.name, "data": label, "cpu_s": args.budget, "iterations": iterations,
                          "opts": json.loads(args.opts), "forward_uvp": scores["forward_uvp"],
                          "inverse_uvp": scores["inverse_uvp"]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
