"""The 2-D toy experiments of the paper's Appendix C.3 (Figures 8-10): ``N(0, I)`` to a mixture or a Swiss roll.

:func:`run_toy` fits W2GN with the settings of C.3, keeps snapshots of the forward-mapped
``grad psi_theta # P`` and inverse-mapped ``grad psi_omega # Q`` samples at chosen iterations, and
scores the result with numbers a user can check: the exact sample W2 (discrete OT, POT) and the
sliced W2 between ``grad psi_theta # P`` and ``Q`` (and, as a scale, between ``P`` and ``Q``), and
for mixtures the fraction of modes that receive mass.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..distributions import GaussianMixture, Sampler, StandardNormal, SwissRoll, eight_gaussians, grid_gaussians
from ..errors import W2GNUserError
from ..fitted_map import TransportMap
from ..io.atomic import atomic_path
from ..metrics import sliced_wasserstein
from ..solvers import TimeBudget, W2GNSolver

#: W2GN settings of Appendix C.3: Dense ICNN [2; 128; 128, 64] (rank 2), 30000 iterations of 1024
#: samples, Adam lr 1e-3, cycle weight lambda = 1, L1 penalty 1e-10 on the weights; plus the second
#: cycle term R_X (eq. 51, ``cycle_x``), which C.1 uses only in high dimensions. Why R_X: with R_Y
#: alone psi_omega learns only through ``||grad psi_theta(grad psi_omega(y)) - y||^2``, whose gradient
#: in psi_omega's output is ``J_theta^T (error)``; where the forward map must squeeze a sector of P
#: onto a mode, ``J_theta`` is nearly singular, so the inverse gets almost no signal to spread the mode
#: back over the sector. It stays a contraction (eight blobs), and the forward map, trained against
#: those blobs, stays an octagon through the modes (benchmarks/results/toy.md, issue 24). R_X measures
#: the cycle on P's side, where the inverse's error is large, and the inverse spreads within 1000 steps.
#: And the convex-quadratic layers (the only ones that read x) learn at 100x the rate (``input_lr_factor``):
#: the true map is nearly constant on a cell of P around each mode and jumps between cells, which needs
#: large input weights (sharp CELU transitions), while Adam moves every weight by about ``lr`` per step
#: whatever its size; at 1e-3 the input weights (~0.7 at initialisation) take tens of thousands of
#: steps to grow, the hidden ones (~1/128) move 10 % a step. 49 Gaussians at 3000 steps: on-mode 0.21
#: (2000 steps) at 1x, 0.31 at 10x, 0.52 at 30x, 0.69 at 100x (benchmarks/results/toy.md, issue 24).
TOY_DEFAULTS: dict[str, Any] = {
    "iterations": 30000,
    "batch_size": 1024,
    "lr": 1e-3,
    "lambda_cycle": 1.0,
    "hidden": [128, 128, 64],
    "rank": 2,
    "l1_penalty": 1e-10,
    # the paper's pictures are in the data's coordinates
    "precondition": "none",
    # C.3's one-sided correlations; R_X added (issue 24): the two-sided objective drew the same maps
    # (8 Gaussians, 2000 it.: on-mode 0.841 vs 0.834, inverse W2 1.30x vs 1.23x its floor)
    "correlation_on": "theta",
    "cycle_x": True,
    "input_lr_factor": 100.0,
    # the Dense ICNN's explicit gradient: the same maps as double backward, faster
    "gradient_mode": "analytic",
}

#: target name -> factory of the target sampler ``Q`` (the source is always ``N(0, I_2)``)
TOY_TARGETS: dict[str, Callable[[], Sampler]] = {
    "8gaussians": eight_gaussians,
    "49gaussians": lambda: grid_gaussians(7),
    "100gaussians": lambda: grid_gaussians(10),
    "swissroll": SwissRoll,
}


def toy_target(name: str) -> Sampler:
    """The target sampler ``Q`` called ``name`` (one of :data:`TOY_TARGETS`)."""
    if name not in TOY_TARGETS:
        raise W2GNUserError(f"unknown toy target {name!r}; choose one of {', '.join(TOY_TARGETS)}")
    return TOY_TARGETS[name]()


def mode_coverage(samples: torch.Tensor, mixture: GaussianMixture, radius_std: float = 3.0,
                  min_share: float = 0.1) -> dict[str, float]:
    """How well samples cover the components of a Gaussian mixture.

    A sample is *on* mode ``k`` if it lies within ``radius_std`` standard deviations of mean ``k``
    (the usual criterion of GAN mode-collapse studies). A mode *receives mass* if at least
    ``min_share`` of its expected number of samples (``N w_k``) are on it.

    Returns ``modes_covered`` (fraction of modes receiving mass), ``modes_covered_count``,
    ``on_mode_fraction`` (fraction of samples on some mode), ``on_mode_fraction_perfect`` (what
    exact samples of the mixture score, :func:`on_mode_share_of_exact_samples`: the yardstick, since
    even a perfect map leaves the Gaussian tails off mode) and ``max_mode_share_ratio`` (largest
    count / expected count, 1 when balanced).
    """
    x = torch.as_tensor(samples).to(torch.float64)
    means = mixture.means64
    d = torch.cdist(x, means)
    dist, k = d.min(dim=1)
    on = dist <= radius_std * mixture.std
    counts = torch.bincount(k[on], minlength=means.shape[0]).to(torch.float64)
    expected = x.shape[0] * mixture.weights64
    covered = counts >= min_share * expected
    return {
        "modes_covered": float(covered.to(torch.float64).mean()),
        "modes_covered_count": int(covered.sum()),
        "modes_total": int(means.shape[0]),
        "on_mode_fraction": float(on.to(torch.float64).mean()),
        "on_mode_fraction_perfect": on_mode_share_of_exact_samples(means.shape[1], radius_std),
        "max_mode_share_ratio": float((counts / expected).max()),
    }


def on_mode_share_of_exact_samples(dim: int, radius_std: float = 3.0) -> float:
    """Share of a ``D``-dimensional isotropic Gaussian within ``radius_std`` standard deviations of its mean.

    The chi-square CDF ``P(chi2_D <= r^2)``: in 2-D ``1 - exp(-r^2 / 2)`` = 0.9889 at 3 std. Exact
    samples of a mixture with well separated modes score this on-mode fraction, so a map's
    :func:`mode_coverage` ``on_mode_fraction`` is read against it, not against 1.
    """
    r2 = torch.tensor(float(radius_std) ** 2 / 2.0, dtype=torch.float64)
    return float(torch.special.gammainc(torch.tensor(dim / 2.0, dtype=torch.float64), r2))


def exact_w2(x: torch.Tensor, y: torch.Tensor) -> float:
    """``W_2`` (not squared) between two equal-weight sample sets by discrete OT (POT's ``ot.emd2``)."""
    import ot

    a = np.asarray(torch.as_tensor(x).to(torch.float64))
    b = np.asarray(torch.as_tensor(y).to(torch.float64))
    cost = ot.dist(a, b)  # squared Euclidean
    return float(np.sqrt(max(ot.emd2([], [], cost, numItermax=1_000_000), 0.0)))


@dataclasses.dataclass
class ToyResult:
    """What :func:`run_toy` returns: the map, the evaluation samples, snapshots and scores."""

    name: str
    fitted: TransportMap
    x: torch.Tensor  # samples of P
    y: torch.Tensor  # samples of Q
    snapshots: list[dict[str, Any]]  # {"iteration", "forward": T(x), "inverse": T^-1(y)}
    metrics: dict[str, float]
    seconds: float


def evaluate_toy(fitted: TransportMap, target: Sampler, x: torch.Tensor, y: torch.Tensor,
                 exact_samples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Scores of a fitted toy map on evaluation samples ``x ~ P``, ``y ~ Q``.

    ``w2_forward``/``w2_identity``: exact sample W2 between ``T(x)``/``x`` and ``y`` on the first
    ``exact_samples`` of each (discrete OT; the value for two independent samples of ``Q`` itself,
    ``w2_q_vs_q``, is the noise floor). ``w2_inverse``: the same for ``T^{-1}(y)`` against ``x``, with
    its floor ``w2_p_vs_p``; ``w2_forward_over_floor``/``w2_inverse_over_floor`` are the ratios (1 for
    a perfect map, up to sampling noise). ``sw2_*``: sliced W2 on all samples. Mixtures add
    :func:`mode_coverage` of ``T(x)`` and the strict mode count (half the expected share required).
    """
    tx = torch.as_tensor(fitted.forward(x))
    ty = torch.as_tensor(fitted.inverse(y))
    gen = torch.Generator().manual_seed(seed)
    n = min(exact_samples, x.shape[0] // 2, y.shape[0] // 2)
    m: dict[str, float] = {
        "w2_forward": exact_w2(tx[:n], y[:n]),
        "w2_inverse": exact_w2(ty[:n], x[:n]),
        "w2_identity": exact_w2(x[:n], y[:n]),
        "w2_q_vs_q": exact_w2(y[:n], y[n : 2 * n]),
        "w2_p_vs_p": exact_w2(x[:n], x[n : 2 * n]),
        "sw2_forward": sliced_wasserstein(tx, y, generator=gen),
        "sw2_inverse": sliced_wasserstein(ty, x, generator=torch.Generator().manual_seed(seed)),
        "sw2_identity": sliced_wasserstein(x, y, generator=torch.Generator().manual_seed(seed)),
        "cycle_error": float((torch.as_tensor(fitted.forward(ty)) - y).square().sum(1).mean().sqrt()),
    }
    m["w2_forward_over_floor"] = m["w2_forward"] / max(m["w2_q_vs_q"], 1e-12)
    m["w2_inverse_over_floor"] = m["w2_inverse"] / max(m["w2_p_vs_p"], 1e-12)
    if isinstance(target, GaussianMixture):
        m.update(mode_coverage(tx, target))
        # the strict count: a mode "receives mass" only with half its expected share on it
        m["modes_covered_strict_count"] = mode_coverage(tx, target, min_share=0.5)["modes_covered_count"]
    return m


def run_toy(name: str, snapshots: Sequence[int] = (200, 2000), eval_samples: int = 4096, exact_samples: int = 2000,
            callback=None, time_budget: float | None = None, **options: Any) -> ToyResult:
    """Fit W2GN from ``N(0, I_2)`` to the toy target ``name`` and evaluate it (Appendix C.3).

    Parameters
    ----------
    name:
        One of :data:`TOY_TARGETS`.
    snapshots:
        Iterations at which ``T(x)`` and ``T^{-1}(y)`` are recorded (Figure 8 uses 200 and 2000; the
        final iteration is always recorded). Must be multiples of
        ``log_every`` (the solver calls back only then); others are rounded up to one.
    eval_samples:
        Size of the fixed evaluation samples of ``P`` and ``Q`` (drawn with a seed of its own).
    time_budget:
        Seconds of training after which the run ends (:class:`~w2gn.solvers.TimeBudget`); ``None``: none.
    options:
        :class:`~w2gn.solvers.W2GNConfig` fields overriding :data:`TOY_DEFAULTS`.
    """
    import time

    target = toy_target(name)
    source = StandardNormal(2)
    opts = {**TOY_DEFAULTS, **options}
    solver = W2GNSolver(**opts)
    gen = torch.Generator().manual_seed(10_000 + int(opts.get("seed", 0)))
    x = source.sample(eval_samples, gen).to(torch.float32)
    y = target.sample(eval_samples, gen).to(torch.float32)
    every = solver.config.log_every
    want = sorted({min(solver.config.iterations, -(-int(s) // every) * every) for s in snapshots if s > 0})
    shots: list[dict[str, Any]] = []
    dtype = torch.float64 if solver.config.dtype == "float64" else torch.float32

    def record(it: int, fitted: TransportMap) -> None:
        shots.append({"iteration": it, "forward": torch.as_tensor(fitted.forward(x.to(dtype))).float(),
                      "inverse": torch.as_tensor(fitted.inverse(y.to(dtype))).float()})

    def cb(it: int, fitted: TransportMap, row: dict[str, float]):
        if it in want and it != solver.config.iterations:
            record(it, fitted)
        return callback(it, fitted, row) if callback is not None else None

    t0 = time.perf_counter()
    fitted = solver.fit(source, target, callback=TimeBudget(solver, time_budget, then=cb) if time_budget else cb)
    seconds = time.perf_counter() - t0
    record(solver.iteration, fitted)
    fitted.info["application"] = f"toy:{name}"
    metrics = evaluate_toy(fitted, target, x.to(dtype), y.to(dtype), exact_samples=exact_samples)
    metrics["seconds"] = seconds
    metrics["iterations"] = solver.iteration
    return ToyResult(name, fitted, x, y, shots, metrics, seconds)


def toy_figure(result: ToyResult, path: str | os.PathLike, max_points: int = 2048) -> Path:
    """Figures 8-10 as one PNG: row 1 the input ``P`` and target ``Q``; then one row per snapshot with
    ``grad psi_theta # P`` over ``Q`` (left) and ``grad psi_omega # Q`` over ``P`` (right). Atomic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = result.x[:max_points].numpy(), result.y[:max_points].numpy()
    rows = 1 + len(result.snapshots)
    fig, axes = plt.subplots(rows, 2, figsize=(6.4, 3.1 * rows), squeeze=False)
    lim_q = float(np.abs(y).max()) * 1.15
    lim_p = float(np.abs(x).max()) * 1.05

    def panel(ax, pts, ref, title, lim, ref_label, pts_label, color):
        ax.scatter(ref[:, 0], ref[:, 1], s=2, c="lightgrey", label=ref_label, rasterized=True)
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c=color, label=pts_label, rasterized=True)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper right", markerscale=4)

    axes[0, 0].scatter(x[:, 0], x[:, 1], s=2, c="tab:blue", rasterized=True)
    axes[0, 0].set_title("input P = N(0, I)", fontsize=9)
    axes[0, 0].set_aspect("equal")
    axes[0, 1].scatter(y[:, 0], y[:, 1], s=2, c="tab:green", rasterized=True)
    axes[0, 1].set_title(f"target Q = {result.name}", fontsize=9)
    axes[0, 1].set_aspect("equal")
    for r, shot in enumerate(result.snapshots, start=1):
        it = shot["iteration"]
        panel(axes[r, 0], shot["forward"][:max_points].numpy(), y, f"forward grad psi_theta # P, iteration {it}",
              lim_q, "Q", "T(x)", "tab:red")
        panel(axes[r, 1], shot["inverse"][:max_points].numpy(), x, f"inverse grad psi_omega # Q, iteration {it}",
              lim_p, "P", "T^-1(y)", "tab:purple")
    m = result.metrics
    txt = f"{result.name}: W2(T#P, Q) = {m['w2_forward']:.3f} (identity {m['w2_identity']:.3f}, floor {m['w2_q_vs_q']:.3f})"
    if "modes_covered" in m:
        txt += f", modes covered {m['modes_covered_count']}/{m['modes_total']}"
    fig.suptitle(txt, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=70)
    plt.close(fig)
    return Path(path)
