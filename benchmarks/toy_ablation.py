"""Issue 24's ablations of the 2-D toy fit: one run, its quality at every snapshot iteration.

Fits ``N(0, I) -> TARGET`` with :func:`w2gn.applications.toy.run_toy` (``TOY_DEFAULTS`` plus ``--opts``,
a JSON dict of :class:`~w2gn.solvers.W2GNConfig` fields) and prints one JSON line per snapshot: the
on-mode fraction (mixtures), the strict mode count, and exact W2 of the forward map against ``Q`` and of
the inverse map against ``P``, each divided by its sampling floor (W2 between two independent samples
of ``--n`` points). The switches below change what the library has no option for, in this process only:

* ``--init-std S``: every Dense ICNN parameter drawn from ``N(0, S^2)`` (non-negative ones clipped), as
  the reference notebook initialises; ``--scale C``: the target divided by ``C`` (``C = 1.43`` whitens
  8 Gaussians); ``--theta-betas``/``--omega-betas``: separate Adam betas per network (the notebook's
  0.8, 0.99 and 0.4, 0.4).

Example (R_Y alone, as Algorithm 1 prints it)::

    PYTHONPATH=src python benchmarks/toy_ablation.py 8gaussians --iters 2000 --snaps 200 1000 \\
        --opts '{"cycle_x": false}' --png /tmp/base.png
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import w2gn.applications.toy as toy
from w2gn.applications.toy import exact_w2, mode_coverage, run_toy, toy_figure, toy_target
from w2gn.distributions import GaussianMixture, StandardNormal
from w2gn.networks import DenseICNN
from w2gn.solvers import W2GNSolver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", choices=list(toy.TOY_TARGETS))
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--snaps", type=int, nargs="*", default=[200, 1000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--opts", default="{}", help="JSON dict of W2GNConfig overrides")
    ap.add_argument("--png", default="", help="also write the Figure 8-style PNG here")
    ap.add_argument("--tag", default="")
    ap.add_argument("--n", type=int, default=1500, help="points per exact-W2 evaluation")
    ap.add_argument("--init-std", type=float, default=0.0, help="N(0, S^2) initialisation (0: the library's)")
    ap.add_argument("--scale", type=float, default=1.0, help="divide the target by this factor")
    ap.add_argument("--theta-betas", type=float, nargs=2, default=None)
    ap.add_argument("--omega-betas", type=float, nargs=2, default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)

    setup = W2GNSolver.setup

    def patched_setup(self, *args, **kw):  # the library has one `betas` for both optimisers
        setup(self, *args, **kw)
        if a.theta_betas:
            self.opt_theta = torch.optim.Adam(self.theta.parameters(), lr=self.config.lr, betas=tuple(a.theta_betas))
        if a.omega_betas:
            self.opt_omega = torch.optim.Adam(self.omega.parameters(), lr=self.config.lr, betas=tuple(a.omega_betas))
        print(json.dumps({"tag": a.tag, "pretrain_relative_loss": self.pretrain_loss}), flush=True)

    W2GNSolver.setup = patched_setup
    if a.init_std > 0:
        def reset(self, seed=None):
            gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
            with torch.no_grad():
                for p in self.parameters():
                    p.normal_(0.0, a.init_std, generator=gen)
                self.project()

        DenseICNN.reset_parameters = reset
    if a.scale != 1.0:
        base = toy.TOY_TARGETS[a.target]()
        if isinstance(base, GaussianMixture):
            toy.TOY_TARGETS[a.target] = lambda: GaussianMixture(base.means64 / a.scale, base.std / a.scale)
        else:
            base.scale, base.noise = base.scale * a.scale, base.noise / a.scale
            toy.TOY_TARGETS[a.target] = lambda: base

    t0 = time.time()
    res = run_toy(a.target, snapshots=a.snaps, eval_samples=4096, exact_samples=300, iterations=a.iters,
                  seed=a.seed, progress=False, log_every=100, **json.loads(a.opts))
    seconds = time.time() - t0
    target = toy_target(a.target)
    n = a.n
    gen = torch.Generator().manual_seed(777)
    floor_q = exact_w2(res.y[:n], target.sample(n, gen).float())
    floor_p = exact_w2(res.x[:n], StandardNormal(2).sample(n, gen).float())
    for shot in res.snapshots:
        fwd, inv = shot["forward"], shot["inverse"]
        row = {"tag": a.tag, "target": a.target, "seed": a.seed, "iteration": shot["iteration"]}
        if isinstance(target, GaussianMixture):
            row["on_mode"] = round(mode_coverage(fwd, target)["on_mode_fraction"], 3)
            row["strict_modes"] = mode_coverage(fwd, target, min_share=0.5)["modes_covered_count"]
        row["w2_forward_over_floor"] = round(exact_w2(fwd[:n], res.y[:n]) / floor_q, 2)
        row["w2_inverse_over_floor"] = round(exact_w2(inv[:n], res.x[:n]) / floor_p, 2)
        print(json.dumps(row), flush=True)
    print(json.dumps({"tag": a.tag, "seconds": round(seconds, 1), "floor_q": round(floor_q, 3),
                      "floor_p": round(floor_p, 3)}), flush=True)
    if a.png:
        toy_figure(res, a.png)


if __name__ == "__main__":
    main()
