"""Produce the hard benchmark pairs shipped as ``src/w2gn/testbeds/data/hard_d{D}.pt`` (deterministic).

The construction of the published continuous W2 benchmark's high-dimensional pairs (Korotin et
al., NeurIPS 2021; see :mod:`w2gn.testbeds.hard`): for each D, seeded by D,

1. ``P`` = a 3-component mixture, and ``Q_1``, ``Q_2`` = two 10-component mixtures
   (:func:`~w2gn.testbeds.hard.grid_mixture`: random linear components of std 0.4, centres on a
   grid, unit variance per coordinate on average);
2. two Dense ICNNs ``psi_i`` (widths ``[max(2D, 64), max(2D, 64), max(D, 32)]``, rank 1,
   strong convexity 1e-4) are trained by W2GN with both cycle terms (lambda = D, batch 1024,
   Adam 1e-3), ``psi_i`` pushing ``P`` towards ``Q_i``; the two trainings advance in lockstep,
   ``--check-every`` steps at a time;
3. after each chunk the candidate map ``T = (grad psi_1 + grad psi_2 - m) / s`` (``m``, ``s`` fitted
   on a fixed sample of ``P``) is scored: identity and linear-map L2-UVP on that sample. Training
   stops at the first check where both are within :data:`STOP_TOL` of the published values for
   this D, when the linear score has passed the band (a longer training only bends the map
   further), or at the step cap; that check's weights are shipped.

The published pairs were trained for up to 500k GPU steps; this CPU construction stops as soon as
the pair is as far from the identity and from linear as theirs, which is what the acceptance band
measures. Shipped so far: D = 2 and 4 (1500 steps per potential each, ~130 CPU s); D >= 8 need far
more steps than the CPU time at hand (benchmarks/results/hard_pairs.md).

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/make_hard_pairs.py --dims 2 --max-steps 12000

Rerunning with the same options and torch version writes the same weights (CPU, one thread,
deterministic algorithms; checked bit for bit at D = 2 by tests/test_hard_pairs.py).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from w2gn.io import atomic_torch_save
from w2gn.metrics import bures_map, l2_uvp
from w2gn.networks import DenseICNN
from w2gn.solvers import W2GNSolver
from w2gn.testbeds.hard import (
    BAND,
    PUBLISHED_BASELINES,
    NormalizedSumPotential,
    grid_mixture,
    hard_state,
    hard_state_to_pair,
    icnn_widths,
)

OUT = Path(__file__).resolve().parents[1] / "src" / "w2gn" / "testbeds" / "data"
SEED = 18_000
#: seed of the sample of P that fixes the normalisation (m, s) and scores the checks
CHECK_SEED = 18_001
CHECK_SAMPLES = 50_000
STRONG_CONVEXITY = 1e-4
#: per-D draw of the mixtures (seed ``SEED + D + 1000 k``); k = 0 unless listed. The published
#: identity L2-UVP fixes how far the mixtures' geometry moves mass; in D = 2 and 4 the first draw
#: moves too little (discrete OT between 1500 samples of P and of each target, summed and normalised:
#: identity/linear 17/14 % at D = 2, 38/24 % at D = 4). Draws chosen by that check: D = 2 draw 4
#: (34/17 %); at D = 4 draw 7 (46/19 %) stalled at linear 8.6 % after 2000 steps, draw 5 (55/31 %)
#: reached the band at 1500. A partly trained map scores below its converged values.
DRAWS = {2: 4, 4: 5}
#: stop once identity and linear L2-UVP are both within this relative distance of the published
#: values (tighter than the +-15 % acceptance band, so that test-time sampling noise stays inside it)
STOP_TOL = 0.10


def score(pot: NormalizedSumPotential, x: torch.Tensor) -> dict[str, float]:
    """Identity and linear (Bures map between Gaussian fits) L2-UVP, in %, of ``grad pot`` on ``x``."""
    return score_pairs(x, pot.map(x))


def make(dim: int, check_every: int, max_steps: int, explore: bool = False, pretrain: int = 1000,
         check_samples: int = CHECK_SAMPLES, log=print, lr: float = 1e-3,
         draw: int | None = None, correlation_on: str = "theta",
         lr_drops: tuple[int, ...] = (), pushforward_check: int = 0,
         input_lr_factor: float = 1.0) -> tuple[dict, dict]:
    """Train one hard pair; returns the state to save and a summary (steps, seconds, check scores).

    ``pretrain``: identity pretraining steps of each potential (the W2GN default, 1000) and
    ``check_samples``: size of the normalisation/check sample; tests shorten both.
    """
    cpu0, wall0 = time.process_time(), time.perf_counter()
    draw = DRAWS.get(dim, 0) if draw is None else draw
    g = torch.Generator().manual_seed(SEED + dim + 1000 * draw)
    src = grid_mixture(dim, 3, g)
    targets = [grid_mixture(dim, 10, g) for _ in range(2)]
    x_check = src.to("cpu", torch.float64).sample(check_samples, torch.Generator().manual_seed(CHECK_SEED))
    src.to("cpu", torch.float32)
    solvers = []
    for i, tgt in enumerate(targets):
        seed = SEED + 100 * dim + i
        net = DenseICNN(dim, icnn_widths(dim), rank=1, strong_convexity=STRONG_CONVEXITY, seed=seed)
        s = W2GNSolver(iterations=check_every, batch_size=1024, lr=lr, hidden=icnn_widths(dim), rank=1,
                       strong_convexity=STRONG_CONVEXITY, cycle_x=True, cycle_y=True, lambda_cycle=float(dim),
                       seed=seed, progress=False, log_every=check_every, gradient_mode="analytic",
                       pretrain_iterations=pretrain, precondition="none",  # the pair is built in P's coordinates
                       correlation_on=correlation_on,  # "theta": as the D = 2, 4 weights were trained
                       input_lr_factor=input_lr_factor)
        s.fit(src, tgt, potential=net)
        solvers.append(s)
    pub_id, pub_lin = PUBLISHED_BASELINES.get(dim, (math.inf, math.inf))
    checks = []
    while True:
        steps = solvers[0].iteration
        pot = NormalizedSumPotential.from_parts([s.theta for s in solvers])
        pot64 = NormalizedSumPotential.from_parts([s.theta for s in solvers]).to(torch.float64)
        pot64.normalize(x_check)
        # the shipped map is the float32 one: score exactly that (m, s rounded to float32)
        pot.shift.copy_(pot64.shift)
        pot.scale.copy_(pot64.scale)
        pot64.load_state_dict(pot.state_dict())
        sc = score(pot64, x_check)
        checks.append({"steps": steps, **sc})
        log(f"  D={dim} steps={steps:6d} identity={sc['identity']:6.1f} linear={sc['linear']:6.1f} "
            f"cpu={time.process_time() - cpu0:7.0f}s", flush=True)
        in_band = abs(sc["identity"] / pub_id - 1) <= STOP_TOL and abs(sc["linear"] / pub_lin - 1) <= STOP_TOL
        # past the band: further training only bends the map further from linear
        overshot = sc["linear"] > pub_lin * (1 + BAND)
        if ((in_band or overshot) and not explore) or steps >= max_steps:
            break
        for s in solvers:  # continue both trainings where they stopped (same sampling stream)
            # step decay: the rate divided by 10 at each of lr_drops, on top of any divergence restart's factor
            s.schedule.scale = s.config.restart_lr_factor ** s.restarts * 0.1 ** sum(steps >= d for d in lr_drops)
            s.set_horizon(s.iteration + check_every)
            s.run(*s.samplers)
    info = {
        "construction": "Korotin et al. 2021 (W2 benchmark) high-dimensional pairs; scripts/make_hard_pairs.py",
        "source": "3-component grid mixture, std 0.4",
        "targets": "two 10-component grid mixtures, std 0.4",
        "draw": draw,
        "steps_per_potential": steps,
        "check_every": check_every,
        "max_steps": max_steps,
        "batch_size": 1024,
        "lr": lr,
        "lambda_cycle": float(dim),
        "correlation_on": correlation_on,
        "lr_drops": list(lr_drops),
        "input_lr_factor": input_lr_factor,
        "strong_convexity": STRONG_CONVEXITY,
        "torch": str(torch.__version__),
    }
    summary = {"dim": dim, "steps": steps, "cpu_seconds": time.process_time() - cpu0,
               "wall_seconds": time.perf_counter() - wall0, "checks": checks}
    if pushforward_check:
        summary["pushforward"] = [pushforward_w2(s, src, tgt, pushforward_check) for s, tgt in zip(solvers, targets)]
        log(f"  D={dim} pushforward check: {summary['pushforward']}", flush=True)
    return hard_state(pot, src, info), summary


def pushforward_w2(solver: W2GNSolver, src, tgt, n: int) -> dict[str, float]:
    """How closely one trained potential does its job: exact W2 (POT ``emd2``, ``n`` points per side) between
    ``grad psi_theta # P`` and a sample of its target, beside two samples of the target (the sampling floor)
    and P itself; the same for the inverse ``grad psi_omega # Q`` against P. A gradient of a convex function
    that pushed P onto Q exactly would be the OT map (Brenier), so a gap above the floor is fitting error."""
    import numpy as np
    import ot

    def w2(a: torch.Tensor, b: torch.Tensor) -> float:
        w = np.full(n, 1.0 / n)
        return math.sqrt(ot.emd2(w, w, ot.dist(a.double().numpy(), b.double().numpy()), numItermax=10**7))

    g = torch.Generator().manual_seed(CHECK_SEED + 1)
    x, x2 = src.sample(n, g).float(), src.sample(n, g).float()
    y, y2 = tgt.sample(n, g).float(), tgt.sample(n, g).float()
    with torch.enable_grad():
        tx = solver.theta.gradient(x, create_graph=False).detach()
        iy = solver.omega.gradient(y, create_graph=False).detach()
    return {"forward": w2(tx, y2), "target_floor": w2(y, y2), "identity": w2(x, y2),
            "inverse": w2(iy, x2), "source_floor": w2(x, x2)}


def discrete_ot_scores(dim: int, draw: int, n: int) -> dict[str, float]:
    """Identity and linear L2-UVP (%) of the *converged* pair of mixture draw ``draw``, estimated without
    training: each potential's OT map replaced by the exact discrete OT plan between ``n`` samples of P and
    ``n`` of its target (POT ``emd``; a permutation), the two matched targets summed and normalised as
    :class:`NormalizedSumPotential` does. Sampling noise in the matching overstates both scores, less as
    ``n`` grows."""
    import numpy as np
    import ot

    g = torch.Generator().manual_seed(SEED + dim + 1000 * draw)
    src = grid_mixture(dim, 3, g)
    targets = [grid_mixture(dim, 10, g) for _ in range(2)]
    gs = torch.Generator().manual_seed(CHECK_SEED + 2)
    x = src.to("cpu", torch.float64).sample(n, gs)
    w = np.full(n, 1.0 / n)
    t = torch.zeros_like(x)
    for tgt in targets:
        y = tgt.to("cpu", torch.float64).sample(n, gs)
        plan = ot.emd(w, w, ot.dist(x.numpy(), y.numpy()), numItermax=10**7)
        t += y[torch.as_tensor(plan.argmax(1))]
    t = (t - t.mean(0)) / t.var(0, unbiased=False).mean().sqrt()
    return score_pairs(x, t)


def score_pairs(x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Identity and linear (Bures map between Gaussian fits) L2-UVP, in %, of the pairs ``x[i] -> y[i]``."""
    var = float((y - y.mean(0)).square().sum(1).mean())
    mx, my = x.mean(0), y.mean(0)
    cx = (x - mx).T @ (x - mx) / x.shape[0]
    cy = (y - my).T @ (y - my) / y.shape[0]
    a, b = bures_map(mx, cx, my, cy)
    return {"identity": l2_uvp(x, y, var), "linear": l2_uvp(x @ a.T + b, y, var)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="2,4,8,16,32,64")
    ap.add_argument("--check-every", type=int, default=250, help="steps per potential between checks")
    ap.add_argument("--max-steps", type=int, default=20_000, help="cap on the steps per potential")
    ap.add_argument("--explore", action="store_true", help="ignore the stopping rule, train to --max-steps")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of both potentials (published: 1e-3)")
    ap.add_argument("--correlation-on", default="theta", choices=["theta", "both"],
                    help="eq. 12 on psi_theta only (the paper) or in both directions")
    ap.add_argument("--lr-drops", default="", help="steps (comma-separated) after which the rate is divided by 10")
    ap.add_argument("--pushforward-check", type=int, default=0, metavar="N",
                    help="after training, exact W2 between grad psi_i # P and its target on N points per side (0 = skip)")
    ap.add_argument("--scan-draws", default=None, metavar="K0-K1",
                    help="train nothing: print the discrete-OT estimate of each draw's converged scores (draws K0..K1)")
    ap.add_argument("--scan-samples", type=int, default=1500, help="samples per side of --scan-draws")
    ap.add_argument("--input-lr-factor", type=float, default=1.0,
                    help="learning-rate multiplier of the layers that read x (default 1: the published settings)")
    ap.add_argument("--draw", type=int, default=None, help="mixture draw k (default: DRAWS[D], else 0)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if args.scan_draws:
        k0, k1 = (int(v) for v in args.scan_draws.split("-"))
        for dim in [int(d) for d in args.dims.split(",")]:
            for k in range(k0, k1 + 1):
                sc = discrete_ot_scores(dim, k, args.scan_samples)
                print(f"D={dim} draw={k} n={args.scan_samples} identity={sc['identity']:.1f} linear={sc['linear']:.1f}",
                      flush=True)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for dim in [int(d) for d in args.dims.split(",")]:
        state, summary = make(dim, args.check_every, args.max_steps, args.explore, lr=args.lr, draw=args.draw,
                              correlation_on=args.correlation_on,
                              lr_drops=tuple(int(v) for v in args.lr_drops.split(",") if v),
                              pushforward_check=args.pushforward_check, input_lr_factor=args.input_lr_factor)
        path = args.out / f"hard_d{dim}.pt"
        atomic_torch_save(state, path)
        pair = hard_state_to_pair(torch.load(path, weights_only=True), str(path))
        b = pair.baselines
        pub = PUBLISHED_BASELINES.get(dim, (float("nan"), float("nan")))
        print(f"D={dim} steps={summary['steps']} cpu={summary['cpu_seconds']:.0f}s wall={summary['wall_seconds']:.0f}s "
              f"identity={b['identity']:.1f} (published {pub[0]}) linear={b['linear']:.1f} (published {pub[1]}) "
              f"affine={b['affine_least_squares']:.1f}", flush=True)
        print("SUMMARY", json.dumps({**summary, "baselines": b}), flush=True)


if __name__ == "__main__":
    main()
