"""Issue 24's reachability bound: how well can the toy's network represent the true OT map at all?

For each target, the OT map from ``P = N(0, I_2)`` to ``Q`` is approximated by discrete OT between
``--pairs`` samples of each (POT's ``ot.emd``; with equal weights the optimal plan is a permutation,
giving pairs ``(x_i, y_i)``). Then the *same* network ``w2gn toy`` trains (``W2GNSolver(**TOY_DEFAULTS)
.build_potential``: Dense ICNN [2; 128; 128, 64], rank 2, CELU, pretrained to the identity as the
solver does) is fitted by plain regression, ``min E ||grad psi(x_i) - y_i||^2`` with Adam and weight
clipping, and a second copy to the reversed pairs for the inverse map. Both are scored with
:func:`~w2gn.applications.toy.evaluate_toy` on fresh samples (the evaluation samples of ``run_toy``
with the same ``--seed``), as W2GN's runs are. The discrete pairs themselves are scored too: in-sample
(``y_i`` as the image of ``x_i``: a permutation of exact samples of Q) and extended to the fresh
samples by nearest neighbour (``x -> y_i`` of the closest ``x_i``), which shows the plan is a correct,
if non-smooth, map.

A W2GN run cannot be expected to beat the regression fit: the regression sees the answer. So the fitted
network's on-mode fraction is an (empirical) ceiling for this network, and ``--hidden`` tries a larger
one to tell capacity from smoothness. Example::

    PYTHONPATH=src python benchmarks/toy_bound.py --targets 8gaussians 49gaussians --json bound.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from w2gn.applications.toy import TOY_DEFAULTS, TOY_TARGETS, evaluate_toy, exact_w2, mode_coverage, toy_target
from w2gn.distributions import GaussianMixture, StandardNormal
from w2gn.fitted_map import TransportMap
from w2gn.metrics import discrete_ot_match
from w2gn.networks import ConvexPotential
from w2gn.solvers import W2GNSolver
from w2gn.solvers.pretrain import pretrain_identity


def regress(net: ConvexPotential, x: torch.Tensor, y: torch.Tensor, steps: int, batch: int, lr: float,
            gen: torch.Generator, log_every: int = 500) -> list[tuple[int, float]]:
    """Fit ``grad net`` to the pairs by Adam on random batches; lr divided by 10 for the last 30 % of the
    steps (to settle in the plateau rather than bounce around it). Returns ``(step, loss on all pairs)``."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    curve: list[tuple[int, float]] = []
    for it in range(1, steps + 1):
        if it == int(0.7 * steps):
            for g in opt.param_groups:
                g["lr"] = lr / 10
        idx = torch.randint(0, x.shape[0], (batch,), generator=gen)
        loss = (net.gradient(x[idx], create_graph=True) - y[idx]).square().sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        net.project()  # the same convexity projection (weight clipping) the solver applies
        if it % log_every == 0 or it == steps:
            with torch.enable_grad():
                full = float((net.gradient(x, create_graph=False) - y).square().sum(1).mean())
            curve.append((it, full))
    return curve


def nearest_neighbour_map(xs: torch.Tensor, ys: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The discrete plan extended to new points: ``x -> ys[i]`` for the nearest ``xs[i]``."""
    return ys[torch.cdist(x.double(), xs.double()).argmin(1)]


def pair_scores(mapped: torch.Tensor, target, y_eval: torch.Tensor, n: int) -> dict[str, float]:
    """On-mode fraction, strict count and forward W2 of given mapped points (no network involved)."""
    out = {"w2_forward": exact_w2(mapped[:n], y_eval[:n])}
    if isinstance(target, GaussianMixture):
        out["on_mode_fraction"] = mode_coverage(mapped, target)["on_mode_fraction"]
        out["modes_covered_strict_count"] = mode_coverage(mapped, target, min_share=0.5)["modes_covered_count"]
    return out


def bound(name: str, pairs: int, steps: int, batch: int, lr: float, hidden: list[int] | None, seed: int,
          inverse_steps: int | None = None, eval_samples: int = 4096, exact_samples: int = 2000) -> dict:
    """All numbers for one target (see the module docstring); ``inverse_steps`` (default ``steps``)
    for the inverse fit, which the on-mode fraction and the forward W2 do not depend on."""
    target = toy_target(name)
    source = StandardNormal(2)
    opts = dict(TOY_DEFAULTS, seed=seed, **({"hidden": hidden} if hidden else {}))
    solver = W2GNSolver(**opts)
    c = solver.config
    # evaluation samples exactly as run_toy draws them, so the numbers sit beside the W2GN runs'
    ev = torch.Generator().manual_seed(10_000 + seed)
    x_eval = source.sample(eval_samples, ev).float()
    y_eval = target.sample(eval_samples, ev).float()
    gen = torch.Generator().manual_seed(20_000 + seed)  # training pairs: independent of the evaluation
    x = source.sample(pairs, gen).float()
    y = target.sample(pairs, gen).float()
    t0 = time.perf_counter()
    y_of_x = discrete_ot_match(x, y)
    t_ot = time.perf_counter() - t0
    n = min(exact_samples, eval_samples // 2)
    rep: dict = {"target": name, "pairs": pairs, "steps": steps, "hidden": c.hidden, "seed": seed,
                 "inverse_steps": steps if inverse_steps is None else inverse_steps,
                 "emd_seconds": t_ot, "mean_sq_displacement": float((y_of_x - x).square().sum(1).mean())}
    rep["discrete_in_sample"] = pair_scores(y_of_x, target, y_eval, n)
    rep["discrete_nearest_neighbour"] = pair_scores(nearest_neighbour_map(x, y_of_x, x_eval).float(), target,
                                                    y_eval, n)
    nets = []
    for k, (a, b) in enumerate([(x, y_of_x), (y_of_x, x)]):  # forward map, then inverse map
        net = solver.build_potential((2,), seed + k)
        pretrain_identity(net, [source, target], c.pretrain_iterations, c.batch_size, c.pretrain_lr,
                          c.pretrain_tol, gen)
        t0 = time.perf_counter()
        curve = regress(net, a, b, rep["inverse_steps"] if k else steps, batch, lr, gen)
        rep[["forward", "inverse"][k] + "_fit"] = {"curve": curve, "seconds": time.perf_counter() - t0}
        nets.append(net)
    fitted = TransportMap(nets[0], nets[1], method="regression")
    rep["regression"] = evaluate_toy(fitted, target, x_eval, y_eval, exact_samples=exact_samples)
    return rep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", nargs="+", default=list(TOY_TARGETS), choices=list(TOY_TARGETS))
    ap.add_argument("--pairs", type=int, default=5000, help="samples per side of the discrete OT problem")
    ap.add_argument("--steps", type=int, default=6000, help="Adam steps of each regression")
    ap.add_argument("--inverse-steps", type=int, default=None, help="Adam steps of the inverse fit (default: --steps)")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, nargs="*", default=None, help="ICNN widths (default: the toy's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="", help="append one JSON line per target here")
    a = ap.parse_args()
    torch.set_num_threads(1)
    for name in a.targets:
        rep = bound(name, a.pairs, a.steps, a.batch, a.lr, a.hidden, a.seed, a.inverse_steps)
        line = json.dumps(rep)
        print(line, flush=True)
        if a.json:
            with Path(a.json).open("a") as fh:
                fh.write(line + "\n")
        r, d = rep["regression"], rep["discrete_nearest_neighbour"]
        print(f"# {name}: regression on-mode {r.get('on_mode_fraction', float('nan')):.3f}, strict "
              f"{r.get('modes_covered_strict_count', '-')}, W2 fwd/floor {r['w2_forward_over_floor']:.2f}, "
              f"inv/floor {r['w2_inverse_over_floor']:.2f}; discrete (NN) on-mode "
              f"{d.get('on_mode_fraction', float('nan')):.3f}; fit losses "
              f"{rep['forward_fit']['curve'][-1][1]:.4f} / {rep['inverse_fit']['curve'][-1][1]:.4f}", flush=True)


if __name__ == "__main__":
    main()
