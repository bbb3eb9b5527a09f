"""Issue 24's cause, isolated: how fast can the toy's network *learn* the OT map when it is given the answer,
as a function of the learning rate of its input layers?

The OT map from ``P = N(0, I_2)`` to a toy target is approximated by discrete OT between 4000 samples of
each (as in ``toy_bound.py``), and the toy's Dense ICNN (``TOY_DEFAULTS`` widths and rank, identity
pretraining, weight clipping) is regressed onto it, ``min E ||grad psi(x_i) - y_i||^2``, with Adam: the
hidden and output layers at ``--lr``, the convex-quadratic layers (the only ones that read x) at ``--lr``
times ``--input-lr-factor``; no rate decay. Every 500 steps the on-mode fraction and strict mode count of
the fitted map on 4096 fresh points of P are printed as one JSON line. ``--drop-at 0.7`` divides the rates
by 10 for the last 30 % of the steps, as ``toy_bound.py`` does.

``--answer semi-discrete`` regresses onto the exact semi-discrete OT map to the mixture's centres instead
(:func:`w2gn.metrics.semi_discrete.semi_discrete_map`, solved on 400,000 points of P): a fresh batch of P
every step, no matching noise. It is the limit of the true map as the modes narrow, and every point it
produces is on a mode, so what the network reaches on it is what this network and optimiser can draw.

    PYTHONPATH=src python benchmarks/toy_input_rate.py --target 49gaussians --steps 2500 --lr 1e-3 --input-lr-factor 10
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from w2gn.applications.toy import TOY_DEFAULTS, TOY_TARGETS, mode_coverage, toy_target
from w2gn.distributions import StandardNormal
from w2gn.metrics import discrete_ot_match, semi_discrete_map
from w2gn.solvers import W2GNSolver
from w2gn.solvers.icnn_config import adam
from w2gn.solvers.pretrain import pretrain_identity


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="49gaussians", choices=[t for t in TOY_TARGETS if t != "swissroll"])
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam rate of the hidden and output layers")
    ap.add_argument("--input-lr-factor", type=float, default=1.0, help="the input layers' rate over --lr")
    ap.add_argument("--drop-at", type=float, default=None,
                    help="divide both rates by 10 after this fraction of the steps (default: no decay)")
    ap.add_argument("--hidden", type=int, nargs="*", default=None, help="ICNN widths (default: the toy's, C.3)")
    ap.add_argument("--pairs", type=int, default=4000)
    ap.add_argument("--answer", default="matching", choices=["matching", "semi-discrete"],
                    help="regress onto the discrete OT matching of --pairs points, or the exact semi-discrete map")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    target, source = toy_target(a.target), StandardNormal(2)
    ev = torch.Generator().manual_seed(10_000 + a.seed)  # run_toy's evaluation points
    x_eval = source.sample(4096, ev).float()
    gen = torch.Generator().manual_seed(20_000 + a.seed)
    if a.answer == "matching":
        x = source.sample(a.pairs, gen).float()
        y_of_x = discrete_ot_match(x, target.sample(a.pairs, gen).float())
    else:
        answer = semi_discrete_map(source.sample(400_000, gen), target.means64, target.weights64)
        print(json.dumps({"semi_discrete_mass_error": answer.mass_error}), flush=True)
    widths = {"hidden": a.hidden} if a.hidden else {}
    solver = W2GNSolver(**{**TOY_DEFAULTS, "seed": a.seed, "input_lr_factor": a.input_lr_factor, "lr": a.lr, **widths})
    c = solver.config
    net = solver.build_potential((2,), a.seed)
    pretrain_identity(net, [source, target], c.pretrain_iterations, c.batch_size, c.pretrain_lr, c.pretrain_tol, gen)
    opt = adam(net, c)  # the solver's own optimiser construction: two groups when the factor is not 1
    t0 = time.perf_counter()
    drop_step = None if a.drop_at is None else int(a.drop_at * a.steps)
    for it in range(1, a.steps + 1):
        if it == drop_step:  # the bound of toy_bound.py ends at a tenth of the rate: it sharpens the fit
            for group in opt.param_groups:
                group["lr"] /= 10
        if a.answer == "matching":
            idx = torch.randint(0, a.pairs, (c.batch_size,), generator=gen)
            xb, yb = x[idx], y_of_x[idx]
        else:
            xb = source.sample(c.batch_size, gen).float()
            yb = answer(xb)
        loss = (net.gradient(xb, create_graph=True) - yb).square().sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        net.project()
        if it % 500 == 0 or it == a.steps:
            mapped = net.map(x_eval)
            print(json.dumps({"target": a.target, "answer": a.answer, "lr": a.lr, "input_lr_factor": a.input_lr_factor,
                              "drop_at": a.drop_at, "hidden": c.hidden, "step": it,
                              "loss": round(float(loss.detach()), 5),
                              "on_mode": mode_coverage(mapped, target)["on_mode_fraction"],
                              "strict": mode_coverage(mapped, target, min_share=0.5)["modes_covered_count"],
                              "seconds": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
