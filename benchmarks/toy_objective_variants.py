"""`w2gn toy` with one change to which network each term of W2GN's objective trains (issue 24's ablations).

Each variant answers one question about why W2GN's forward map stays less sharp than the same network
regressed onto the exact map (benchmarks/results/toy.md, seventh and eighth sessions):

* ``rx-omega-only``: does R_X's pull on psi_theta (towards the inverse of a smooth psi_omega) blunt the
  forward map? R_X = E_P ||grad psi_omega(grad psi_theta(x)) - x||^2 with ``grad psi_theta(x)`` detached,
  so R_X trains psi_omega alone.
* ``amortised``: psi_theta learns from the correlations only; psi_omega from R_Y and R_X with psi_theta's
  weights frozen, i.e. psi_omega is an amortised conjugate solver fitted by the cycle terms (the split
  of Amos, ICLR 2023, with the cycle terms as the amortisation loss).
* ``omega-rate F``: every learning rate of psi_omega at F times psi_theta's (the inverse follows faster).
* ``match F``: plus F times a mini-batch W2 term for each map's image, ``mean ||grad psi_theta(x_i) - y_pi(i)||^2``
  with ``pi`` the exact matching (``w2gn.metrics.discrete_ot_match``) of the detached images to the
  y's (and the mirror for psi_omega), on the first 512 rows of the batch: a signal on the map itself, at every
  point of P, where the correlations only see the potential's values. A gradient of a convex function that
  pushes P onto Q is the OT map (Brenier / McCann), so this term has the same answer.

Usage: ``python benchmarks/toy_objective_variants.py VARIANT [F] -- TOY-ARGS`` where TOY-ARGS are
``w2gn toy``'s (target, --iterations, --seed, --out-dir, ...). The outputs are ``w2gn toy``'s (PNG, JSON).
This is an ablation tool: it patches the solver for the run; the library itself is untouched.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch

import w2gn.solvers.objective as objective
import w2gn.solvers.w2gn as w2gn_module
from w2gn.cli import main as w2gn_main
from w2gn.metrics import discrete_ot_match

_ORIGINAL_OBJECTIVE = objective.w2gn_objective


def rx_omega_only(theta, omega, x, y, terms, gradient, refine=None, fused=False):
    """The objective with R_X training psi_omega only (its forward image of x detached)."""
    if not terms.cycle_x:
        return _ORIGINAL_OBJECTIVE(theta, omega, x, y, terms, gradient, refine, fused)
    loss, parts = _ORIGINAL_OBJECTIVE(theta, omega, x, y, dataclasses.replace(terms, cycle_x=False), gradient,
                                      refine, fused)
    cyc_x = objective.cycle_error(gradient(omega, gradient(theta, x).detach()), x, terms.normalization)
    parts["cycle_x"] = cyc_x.detach()
    parts["cycle_x_rel"] = objective._over_constant_map(cyc_x.detach(), x, terms.normalization)
    return loss + terms.lam * cyc_x, parts


def amortised(theta, omega, x, y, terms, gradient, refine=None, fused=False):
    """psi_theta: the correlations only; psi_omega: R_Y and R_X with psi_theta's weights frozen."""
    t = terms
    y_inv = gradient(omega, y)
    x_hat = y_inv.detach()
    psi_x, psi_y = theta(x).mean(), theta(x_hat).mean()
    loss = psi_x - psi_y
    flags = [p.requires_grad for p in theta.parameters()]
    for p in theta.parameters():  # the graph through grad psi_theta stays, for psi_omega's gradient
        p.requires_grad_(False)
    try:
        cyc_y = objective.cycle_error(gradient(theta, y_inv), y, t.normalization)
        with torch.no_grad():
            fx = gradient(theta, x)
    finally:
        for p, f in zip(theta.parameters(), flags):
            p.requires_grad_(f)
    loss = loss + t.lam * cyc_y
    cyc_x = objective.cycle_error(gradient(omega, fx.detach()), x, t.normalization)
    if t.cycle_x:
        loss = loss + t.lam * cyc_x
    if t.l1:
        loss = loss + t.l1 * (theta.l1_norm() + omega.l1_norm())
    with torch.no_grad():
        corr = psi_x - psi_y + objective.batch_inner(x_hat, y).mean()
        w2 = x.flatten(1).square().sum(1).mean() + y.flatten(1).square().sum(1).mean() - 2 * corr
    parts = {"correlation": corr, "cycle_y": cyc_y.detach(), "cycle_x": cyc_x.detach(), "w2_dual": w2,
             "cycle_y_rel": objective._over_constant_map(cyc_y.detach(), y, t.normalization),
             "cycle_x_rel": objective._over_constant_map(cyc_x.detach(), x, t.normalization)}
    return loss, parts


MATCH_ROWS = 512


def with_matching(weight: float):
    """The objective plus ``weight`` times each map's mini-batch W2 term (see the module doc)."""

    def objective_plus(theta, omega, x, y, terms, gradient, refine=None, fused=False):
        loss, parts = _ORIGINAL_OBJECTIVE(theta, omega, x, y, terms, gradient, refine, fused)
        xm, ym = x[:MATCH_ROWS], y[:MATCH_ROWS]
        fx, gy = gradient(theta, xm), gradient(omega, ym)
        term = objective.cycle_error(fx, discrete_ot_match(fx.detach(), ym), terms.normalization) \
            + objective.cycle_error(gy, discrete_ot_match(gy.detach(), xm), terms.normalization)
        parts["matching"] = term.detach()
        return loss + weight * term, parts

    return objective_plus


def omega_rate(factor: float) -> None:
    """Make the second optimiser W2GNSolver.setup builds (psi_omega's) run at ``factor`` times every rate."""
    original = w2gn_module.adam
    calls = {"n": 0}

    def patched(net, config, lr=None):
        opt = original(net, config, lr)
        calls["n"] += 1
        if calls["n"] % 2 == 0:
            for group in opt.param_groups:
                group["lr"] *= factor
        return opt

    w2gn_module.adam = patched


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ours, toy_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variant", choices=["rx-omega-only", "amortised", "omega-rate", "match"])
    p.add_argument("factor", nargs="?", type=float, default=3.0, help="omega-rate's / match's F (default 3)")
    a = p.parse_args(ours)
    if a.variant == "rx-omega-only":
        w2gn_module.w2gn_objective = rx_omega_only
    elif a.variant == "amortised":
        w2gn_module.w2gn_objective = amortised
    elif a.variant == "match":
        w2gn_module.w2gn_objective = with_matching(a.factor)
    else:
        omega_rate(a.factor)
    print(f"variant {a.variant}" + (f" x{a.factor}" if a.variant in ("omega-rate", "match") else ""), flush=True)
    return w2gn_main(["toy", *toy_args])


if __name__ == "__main__":
    sys.exit(main())
