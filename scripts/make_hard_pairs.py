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
measures. Shipped so far: D = 2 and 4 as above (1500 W2GN steps per potential each, ~130 CPU s), and
D = 8 with the departures of :data:`RECIPES`: the mixtures laid out as the published sampler lays them out
(:func:`~w2gn.testbeds.hard.level_mixture`) and each ``psi_i`` fitted by regression onto the discrete OT
matching between 4096 points of P and of ``Q_i`` (:class:`RegressionTrainer`; 500 steps, ~25 CPU s), and
D = 16 the same way (draw 15, lr 1e-2; 3750 steps, ~120 CPU s), D = 32 the same way with a step decay (draw 19,
lr 1e-2 divided by 10 after 12,000 and 16,000 steps; 18,000 steps, ~500 CPU s, inside the +-15 % band but not the
stopping rule's +-10 %, so it runs to --max-steps). D = 64 is not built yet (benchmarks/results/hard_pairs.md).

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/make_hard_pairs.py --dims 2 --max-steps 12000
    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/make_hard_pairs.py --dims 8     # RECIPES[8]
    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/make_hard_pairs.py --dims 16    # RECIPES[16]
    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/make_hard_pairs.py --dims 32 --max-steps 18000 --check-every 1000

Rerunning with the same options, torch version and kind of CPU writes the same weights (one thread,
deterministic algorithms; checked bit for bit at D = 32 by tests/test_hard_pairs.py). On another CPU the
matrix kernels round differently: D = 8, made on an earlier VM, rebuilds here to other floats and to
identity / linear 59.9 / 27.6 % against the shipped 59.7 / 27.7 %, and D = 16 meets the stopping rule at
2500 steps instead of 3750. The regression construction (D >= 8) keeps
the per-tensor Adam it was made with; the W2GN construction (D = 2, 4) trains with W2GNSolver, whose Adam has been
PyTorch's fused kernel since 2026-12-01, so it too rounds differently from the shipped D = 2 and 4 files.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from w2gn.io import atomic_torch_save
from w2gn.metrics import bures_map, discrete_ot_match, l2_uvp
from w2gn.networks import DenseICNN
from w2gn.solvers import W2GNSolver
from w2gn.solvers.icnn_config import PotentialConfig, adam
from w2gn.solvers.pretrain import pretrain_identity
from w2gn.testbeds.hard import (
    BAND,
    PUBLISHED_BASELINES,
    NormalizedSumPotential,
    grid_mixture,
    hard_state,
    hard_state_to_pair,
    icnn_widths,
    level_mixture,
)

OUT = Path(__file__).resolve().parents[1] / "src" / "w2gn" / "testbeds" / "data"
SEED = 18_000
#: seed of the sample of P that fixes the normalisation (m, s) and scores the checks
CHECK_SEED = 18_001
CHECK_SAMPLES = 50_000
STRONG_CONVEXITY = 1e-4
#: how the mixtures are laid out: "grid" (:func:`grid_mixture`, std 0.4 after standardising; the shipped
#: D = 2, 4 pairs) or "levels" (:func:`level_mixture`, the published sampler's layout, std 0.4 before)
MIXTURES = {"grid": grid_mixture, "levels": level_mixture}
#: per-D draw of the mixtures (seed ``SEED + D + 1000 k``); k = 0 unless listed. The published
#: identity L2-UVP fixes how far the mixtures' geometry moves mass; in D = 2 and 4 the first draw
#: moves too little (discrete OT between 1500 samples of P and of each target, summed and normalised:
#: identity/linear 17/14 % at D = 2, 38/24 % at D = 4). Draws chosen by that check: D = 2 draw 4
#: (34/17 %); at D = 4 draw 7 (46/19 %) stalled at linear 8.6 % after 2000 steps, draw 5 (55/31 %)
#: reached the band at 1500. A partly trained map scores below its converged values.
DRAWS = {2: 4, 4: 5}
#: the published construction's settings (``make``'s defaults), and the per-D departures from them.
#: D >= 8: the published layout of the mixtures and a regression onto the discrete OT matching, because
#: the W2GN-trained potentials on the grid layout flattened below the band (hard_pairs.md, "Third attempt"
#: and "D >= 8 by regression"); the draws were picked by 3000-step regression scans of draws 1-6 / 2-8.
PUBLISHED = {"lr": 1e-3, "input_lr_factor": 1.0, "objective": "w2gn", "layout": "grid", "draw": None}
#: settings a recipe may also fix (``make``'s defaults otherwise): the rate's step decay and the size of the
#: regression's matching
EXTRAS = ("lr_drops", "ot_samples")
RECIPES: dict[int, dict] = {
    8: {"lr": 3e-3, "input_lr_factor": 10.0, "objective": "regression", "layout": "levels", "draw": 1},
    # draw 15 of a 3000-step scan of draws 9-24 (lr 3e-3: linear 23.4-33.1 %); at lr 1e-2 it enters the band
    16: {"lr": 1e-2, "input_lr_factor": 10.0, "objective": "regression", "layout": "levels", "draw": 15},
    # draw 19 of a 3000-step scan of draws 9-24 (linear 34.8-42.8 % at lr 1e-2, where the fit oscillates); the rate
    # divided by 10 after 12,000 and 16,000 steps lets it settle further from linear (hard_pairs.md, fifteenth session)
    32: {"lr": 1e-2, "input_lr_factor": 10.0, "objective": "regression", "layout": "levels", "draw": 19,
         "lr_drops": [12_000, 16_000]},
}
#: stop once identity and linear L2-UVP are both within this relative distance of the published
#: values (tighter than the +-15 % acceptance band, so that test-time sampling noise stays inside it)
STOP_TOL = 0.10


def step_decay(iteration: int, drops: Sequence[int]) -> float:
    """The rate's factor at ``iteration``: divided by 10 at each of ``drops`` already reached."""
    return 0.1 ** sum(iteration >= d for d in drops)


def score(pot: NormalizedSumPotential, x: torch.Tensor) -> dict[str, float]:
    """Identity and linear (Bures map between Gaussian fits) L2-UVP, in %, of ``grad pot`` on ``x``."""
    return score_pairs(x, pot.map(x))


def make(dim: int, check_every: int, max_steps: int, explore: bool = False, pretrain: int = 1000,
         check_samples: int = CHECK_SAMPLES, log=print, lr: float = 1e-3,
         draw: int | None = None, correlation_on: str = "theta",
         lr_drops: Sequence[int] = (), pushforward_check: int = 0,
         input_lr_factor: float = 1.0, objective: str = "w2gn",
         ot_samples: int = 4096, layout: str = "grid") -> tuple[dict, dict]:
    """Train one hard pair; returns the state to save and a summary (steps, seconds, check scores).

    ``pretrain``: identity pretraining steps of each potential (the W2GN default, 1000) and
    ``check_samples``: size of the normalisation/check sample; tests shorten both.
    ``objective``: ``"w2gn"`` (the published construction) or ``"regression"`` (each ``psi_i`` fitted to the
    discrete OT map between ``ot_samples`` points of P and of its target; :class:`RegressionTrainer`).
    """
    cpu0, wall0 = time.process_time(), time.perf_counter()
    draw = DRAWS.get(dim, 0) if draw is None else draw
    g = torch.Generator().manual_seed(SEED + dim + 1000 * draw)
    mix = MIXTURES[layout]
    src = mix(dim, 3, g)
    targets = [mix(dim, 10, g) for _ in range(2)]
    x_check = src.to("cpu", torch.float64).sample(check_samples, torch.Generator().manual_seed(CHECK_SEED))
    src.to("cpu", torch.float32)
    trainers: list = []
    for i, tgt in enumerate(targets):
        seed = SEED + 100 * dim + i
        net = DenseICNN(dim, icnn_widths(dim), rank=1, strong_convexity=STRONG_CONVEXITY, seed=seed)
        if objective == "regression":
            trainers.append(RegressionTrainer(net, src, tgt, ot_samples, lr, input_lr_factor, pretrain, seed,
                                              lr_drops=lr_drops))
            trainers[-1].advance(check_every)
            continue
        s = W2GNSolver(iterations=check_every, batch_size=1024, lr=lr, hidden=icnn_widths(dim), rank=1,
                       strong_convexity=STRONG_CONVEXITY, cycle_x=True, cycle_y=True, lambda_cycle=float(dim),
                       seed=seed, progress=False, log_every=check_every, gradient_mode="analytic",
                       pretrain_iterations=pretrain, precondition="none",  # the pair is built in P's coordinates
                       correlation_on=correlation_on,  # "theta": as the D = 2, 4 weights were trained
                       input_lr_factor=input_lr_factor)
        s.fit(src, tgt, potential=net)
        trainers.append(W2GNTrainer(s, lr_drops))
    pub_id, pub_lin = PUBLISHED_BASELINES.get(dim, (math.inf, math.inf))
    checks = []
    while True:
        steps = trainers[0].iteration
        pot = NormalizedSumPotential.from_parts([t.potential for t in trainers])
        pot64 = NormalizedSumPotential.from_parts([t.potential for t in trainers]).to(torch.float64)
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
        for t in trainers:  # continue both trainings where they stopped (same sampling stream)
            t.advance(check_every)
    info = {
        "construction": "Korotin et al. 2021 (W2 benchmark) high-dimensional pairs; scripts/make_hard_pairs.py",
        "source": f"3-component {layout} mixture, std 0.4",
        "targets": f"two 10-component {layout} mixtures, std 0.4",
        "draw": draw,
        "steps_per_potential": steps,
        "check_every": check_every,
        "max_steps": max_steps,
        "batch_size": 1024,
        "lr": lr,
        "objective": objective,
        "layout": layout,
        # the settings that only one objective uses
        **({"ot_samples": ot_samples} if objective == "regression" else
           {"lambda_cycle": float(dim), "correlation_on": correlation_on}),
        # (a regression without drops records none, as the D = 8 and 16 files were written)
        **({"lr_drops": list(lr_drops)} if lr_drops or objective == "w2gn" else {}),
        "input_lr_factor": input_lr_factor,
        "strong_convexity": STRONG_CONVEXITY,
        "torch": str(torch.__version__),
    }
    summary = {"dim": dim, "steps": steps, "cpu_seconds": time.process_time() - cpu0,
               "wall_seconds": time.perf_counter() - wall0, "checks": checks}
    if pushforward_check and objective == "w2gn":
        summary["pushforward"] = [pushforward_w2(t.solver, src, tgt, pushforward_check)
                                  for t, tgt in zip(trainers, targets)]
        log(f"  D={dim} pushforward check: {summary['pushforward']}", flush=True)
    return hard_state(pot, src, info), summary


class W2GNTrainer:
    """One potential of the published construction: a W2GN solver advanced ``n`` steps at a time."""

    def __init__(self, solver: W2GNSolver, lr_drops: Sequence[int] = ()) -> None:
        self.solver, self.lr_drops = solver, lr_drops

    @property
    def potential(self) -> DenseICNN:
        return self.solver.theta

    @property
    def iteration(self) -> int:
        return self.solver.iteration

    def advance(self, n: int) -> None:
        s = self.solver
        # step decay: the rate divided by 10 at each of lr_drops, on top of any divergence restart's factor
        s.schedule.scale = s.config.restart_lr_factor ** s.restarts * step_decay(s.iteration, self.lr_drops)
        s.set_horizon(s.iteration + n)
        s.run(*s.samplers)


class RegressionTrainer:
    """One potential fitted to the answer: ``min E ||grad psi(x_j) - y_sigma(j)||^2`` over the exact discrete
    OT matching ``sigma`` (POT ``emd``; a permutation) between ``n_pairs`` samples of P and of its target.

    Why: W2GN's own fits of these multi-modal maps flatten below the published hardness at D >= 8 on a
    CPU budget (``benchmarks/results/hard_pairs.md``, "Third attempt"), while a regression onto the
    matching learns the mode-splitting map quickly (issue 24's bound). The matching is noisy within a
    component in high D; the network's smooth fit averages that noise, and the construction stops as soon
    as the pair's identity and linear scores are in the published band, as the W2GN construction does.
    Identity pretraining and the rate of the layers that read x (``input_lr_factor``) as in W2GN.
    """

    def __init__(self, net: DenseICNN, src, tgt, n_pairs: int, lr: float, input_lr_factor: float,
                 pretrain: int, seed: int, batch_size: int = 1024, lr_drops: Sequence[int] = ()) -> None:
        self.net, self.batch_size, self.iteration, self.lr_drops = net, batch_size, 0, lr_drops
        self.gen = torch.Generator().manual_seed(seed)
        pretrain_identity(net, [src, tgt], pretrain, batch_size, 1e-3, 1e-4, self.gen)
        x = src.to("cpu", torch.float64).sample(n_pairs, self.gen)
        y = tgt.to("cpu", torch.float64).sample(n_pairs, self.gen)
        src.to("cpu", torch.float32)
        tgt.to("cpu", torch.float32)
        self.x, self.y = x.float(), discrete_ot_match(x, y).float()
        # the per-tensor Adam the shipped files were made with: the rebuild must give the same floats
        self.opt = adam(net, PotentialConfig(lr=lr, input_lr_factor=input_lr_factor), fused=False)
        self.base_lrs = [group["lr"] for group in self.opt.param_groups]

    @property
    def potential(self) -> DenseICNN:
        return self.net

    def advance(self, n: int) -> None:
        for _ in range(n):
            if self.lr_drops:  # without drops the rates are left exactly as Adam was built with them
                factor = step_decay(self.iteration, self.lr_drops)
                for group, base in zip(self.opt.param_groups, self.base_lrs):
                    group["lr"] = base * factor
            idx = torch.randint(0, self.x.shape[0], (self.batch_size,), generator=self.gen)
            loss = (self.net.gradient(self.x[idx], create_graph=True) - self.y[idx]).square().sum(1).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.net.project()  # the non-negative weights stay non-negative: psi stays convex
            self.iteration += 1


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


def discrete_ot_scores(dim: int, draw: int, n: int, layout: str = "grid") -> dict[str, float]:
    """Identity and linear L2-UVP (%) of the *converged* pair of mixture draw ``draw``, estimated without
    training: each potential's OT map replaced by the exact discrete OT plan between ``n`` samples of P and
    ``n`` of its target (POT ``emd``; a permutation), the two matched targets summed and normalised as
    :class:`NormalizedSumPotential` does. Sampling noise in the matching overstates both scores, less as
    ``n`` grows."""
    g = torch.Generator().manual_seed(SEED + dim + 1000 * draw)
    mix = MIXTURES[layout]
    src = mix(dim, 3, g)
    targets = [mix(dim, 10, g) for _ in range(2)]
    gs = torch.Generator().manual_seed(CHECK_SEED + 2)
    x = src.to("cpu", torch.float64).sample(n, gs)
    t = torch.zeros_like(x)
    for tgt in targets:
        t += discrete_ot_match(x, tgt.to("cpu", torch.float64).sample(n, gs))
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


def recipe(dim: int, args: argparse.Namespace) -> dict:
    """The construction settings for ``dim``: the published ones, overridden by ``RECIPES[dim]``, then by any
    flag given on the command line."""
    given = {k: getattr(args, k) for k in (*PUBLISHED, *EXTRAS) if getattr(args, k) is not None}
    return {**PUBLISHED, **RECIPES.get(dim, {}), **given}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="2,4,8,16,32,64")
    ap.add_argument("--check-every", type=int, default=250, help="steps per potential between checks")
    ap.add_argument("--max-steps", type=int, default=20_000, help="cap on the steps per potential")
    ap.add_argument("--explore", action="store_true", help="ignore the stopping rule, train to --max-steps")
    ap.add_argument("--lr", type=float, default=None,
                    help="Adam learning rate of both potentials (default: RECIPES[D], else published 1e-3)")
    ap.add_argument("--correlation-on", default="theta", choices=["theta", "both"],
                    help="eq. 12 on psi_theta only (the paper) or in both directions")
    ap.add_argument("--lr-drops", type=lambda v: [int(t) for t in v.split(",") if t], default=None,
                    help="steps (comma-separated) after which the rate is divided by 10 (default: RECIPES[D], else none)")
    ap.add_argument("--pushforward-check", type=int, default=0, metavar="N",
                    help="after training, exact W2 between grad psi_i # P and its target on N points per side (0 = skip)")
    ap.add_argument("--scan-draws", default=None, metavar="K0-K1",
                    help="train nothing: print the discrete-OT estimate of each draw's converged scores (draws K0..K1)")
    ap.add_argument("--scan-samples", type=int, default=1500, help="samples per side of --scan-draws")
    ap.add_argument("--input-lr-factor", type=float, default=None,
                    help="learning-rate multiplier of the layers that read x (default: RECIPES[D], else published 1)")
    ap.add_argument("--objective", default=None, choices=["w2gn", "regression"],
                    help="how each psi_i is trained: W2GN (published) or regression onto a discrete OT matching "
                         "(default: RECIPES[D], else w2gn)")
    ap.add_argument("--ot-samples", type=int, default=None,
                    help="points per side of --objective regression's matching (default: RECIPES[D], else 4096)")
    ap.add_argument("--layout", default=None, choices=sorted(MIXTURES),
                    help="mixture layout (see MIXTURES; default: RECIPES[D], else grid)")
    ap.add_argument("--draw", type=int, default=None, help="mixture draw k (default: RECIPES[D] or DRAWS[D], else 0)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if args.scan_draws:
        k0, k1 = (int(v) for v in args.scan_draws.split("-"))
        for dim in [int(d) for d in args.dims.split(",")]:
            for k in range(k0, k1 + 1):
                sc = discrete_ot_scores(dim, k, args.scan_samples, recipe(dim, args)["layout"])
                print(f"D={dim} draw={k} n={args.scan_samples} identity={sc['identity']:.1f} linear={sc['linear']:.1f}",
                      flush=True)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for dim in [int(d) for d in args.dims.split(",")]:
        state, summary = make(dim, args.check_every, args.max_steps, args.explore, correlation_on=args.correlation_on,
                              pushforward_check=args.pushforward_check, **recipe(dim, args))
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
