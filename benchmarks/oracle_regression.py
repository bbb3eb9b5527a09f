"""Given the answer: how close can `w2gn fit`'s network get to a benchmark pair's true map? (issue 18)

Trains the potential `w2gn fit` would build for the pair (the ``fit`` preset's Dense ICNN: widths, rank,
activation, strong convexity; identity pretraining; Adam at ``default_lr(D)`` with the input layers at
``input_lr_factor`` x the rate and a cosine decay) by plain regression of ``grad psi_theta(x)`` onto the
*true* map ``T*(x)``, on fresh samples ``x ~ P`` every step, for a given number of steps (by default the
number a 900 CPU-s `w2gn fit` run takes on the pair). No W2GN objective, no inverse network, no cycle:
the error it ends at is what the network and the optimiser alone leave on this pair, so a W2GN fit far
above it is held back by its objective, and one near it by the network.

Prints one JSON line per evaluation (forward L2-UVP on the pair's fixed evaluation samples):

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/oracle_regression.py --family hard --dim 16 --steps 23000
    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/oracle_regression.py --family hard --dim 16 --hidden-scale 2

One torch thread; ``cpu_s`` counts this process's CPU seconds of training.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _shared import ForwardOnly

from w2gn.solvers import W2GNSolver
from w2gn.solvers.icnn_config import adam
from w2gn.solvers.presets import preset
from w2gn.solvers.pretrain import pretrain_identity
from w2gn.solvers.schedule import LRSchedule
from w2gn.testbeds.pairs import load_pair


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="hard", choices=["easy", "hard"])
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--steps", type=int, default=None,
                    help="regression steps (default: about what a 900 CPU-s fit takes: 33,000 at D <= 8, 23,000 above)")
    ap.add_argument("--hidden-scale", type=float, default=1.0, help="widths x this factor")
    ap.add_argument("--input-lr-factor", type=float, default=None, help="override the preset's factor")
    ap.add_argument("--lr", type=float, default=None, help="override the preset's rate")
    ap.add_argument("--evals", type=int, default=12, help="evaluations, log-spaced in steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", default=None, metavar="PATH",
                    help="save the trained potential there (for benchmarks/error_by_stretch.py --potential)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    pair = load_pair(args.dim, family=args.family)
    d = args.dim
    steps = args.steps or (33_000 if d <= 8 else 23_000)
    opts = preset("fit", dim=d, seed=args.seed)
    if args.input_lr_factor is not None:
        opts["input_lr_factor"] = args.input_lr_factor
    if args.lr is not None:
        opts["lr"] = args.lr
    solver = W2GNSolver(**opts)
    c = solver.config
    net = solver.build_potential((d,), c.seed)
    if args.hidden_scale != 1.0:
        from w2gn.networks import DenseICNN

        net = DenseICNN(d, [int(h * args.hidden_scale) for h in net.hidden], rank=c.rank, activation=c.activation,
                        strong_convexity=c.strong_convexity, seed=c.seed)
    gen = torch.Generator().manual_seed(c.seed)
    src = pair.source
    pretrain_identity(net, [src, pair.target], c.pretrain_iterations, c.batch_size, c.pretrain_lr, c.pretrain_tol, gen)
    opt = adam(net, c)
    schedule = LRSchedule("cosine", c.lr_final_factor, steps)  # what the fit's cosine decay does over `steps`
    schedule.attach({"net": opt})
    marks = sorted({max(1, round(steps ** (k / (args.evals - 1)))) for k in range(args.evals)})
    t0, spent = time.process_time(), 0.0
    print(json.dumps({"dim": d, "family": args.family, "steps": steps, "hidden": list(net.hidden), "lr": c.lr,
                      "input_lr_factor": c.input_lr_factor, "batch": c.batch_size, "identity_init": True}), flush=True)
    for it in range(1, steps + 1):
        schedule.apply({"net": opt}, it - 1)
        x = src.sample(c.batch_size, gen)
        with torch.no_grad():
            y = pair.forward_map(x)
        loss = (net.gradient_analytic(x) - y).square().sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        net.project()
        if it in marks:
            spent += time.process_time() - t0
            net.eval()
            uvp = pair.evaluate(ForwardOnly(net))["forward_uvp"]
            net.train()
            print(json.dumps({"step": it, "cpu_s": round(spent, 1), "forward_uvp": round(uvp, 4),
                              "train_mse": round(float(loss.detach()), 6)}), flush=True)
            t0 = time.process_time()
    if args.save:
        ForwardOnly(net).save(args.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
