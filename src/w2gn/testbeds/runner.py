"""Run solvers on benchmark pairs under a wall-clock budget and score them against the true maps.

What ``w2gn benchmark`` and ``benchmarks/accuracy.py`` call. A *method* is either a named W2GN
configuration from :data:`PRESETS` (:mod:`w2gn.solvers.presets`: the paper's, ``w2gn fit``'s and the
ablation of the accuracy options) or any solver name in
:data:`w2gn.solvers.SOLVERS` with its default configuration.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch

from ..errors import W2GNUserError
from ..solvers import SOLVERS, TimeBudget, W2GNConfig, W2GNSolver
from ..solvers.presets import ALIASES, Preset, preset
from ..solvers.presets import PRESETS as _PRESETS
from .pairs import BenchmarkPair

#: the named W2GN configurations the runner accepts as methods (one registry, :mod:`w2gn.solvers.presets`;
#: ``"fit"``, alias ``"fit-default"``, is exactly what ``w2gn fit`` trains with)
PRESETS: dict[str, Preset] = {**_PRESETS, **{alias: _PRESETS[name] for alias, name in ALIASES.items()}}


def method_options(method: str, dim: int) -> dict[str, Any] | None:
    """W2GN keyword options of a preset (resolved for ``dim``), or ``None`` for a non-preset solver.

    A preset's ``iterations`` is left out: here the time budget and ``max_iterations`` end the run,
    as they always have (the schedule's horizon is re-aimed at the budget)."""
    if method not in PRESETS:
        if method in SOLVERS:
            return None
        raise W2GNUserError(f"unknown method {method!r}; choose presets {', '.join(PRESETS)} or solvers {', '.join(SOLVERS)}")
    opts = preset(method, dim)
    opts.pop("iterations", None)
    return opts


@dataclasses.dataclass
class FitResult:
    """One fit: final scores on the pair's fixed evaluation samples and the convergence curve."""

    pair: str
    dim: int
    method: str
    forward_uvp: float
    inverse_uvp: float
    forward_cosine: float
    inverse_cosine: float
    seconds: float
    iterations: int
    curve: list[dict[str, float]]
    options: dict[str, Any]

    def row(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "curve"}


def run_fit(pair: BenchmarkPair, method: str = "paper", budget_s: float = 60.0, max_iterations: int = 1_000_000,
            seed: int = 0, log_every: int = 100, curve_samples: int = 2048, device: str = "cpu",
            dtype: str = "float32", progress: bool = False, clock: str = "process", **overrides: Any) -> FitResult:
    """Fit ``method`` on ``pair`` for at most ``budget_s`` seconds of training and score it.

    The budget counts the solver's wall time (pretraining included) but not the evaluations for the
    convergence curve, which happen every ``log_every`` iterations on ``curve_samples`` fixed
    samples (forward and inverse L2-UVP against seconds). The iteration horizon (which a cosine
    schedule decays over) is re-estimated at each evaluation from the measured speed so that the
    run ends at the budget. Final scores use the pair's 16384 evaluation samples.

    ``clock="process"`` (default) measures the budget in CPU seconds of this process
    (:func:`time.process_time`): on a CPU shared with other jobs, wall time depends on the load,
    CPU time much less (with one thread it is close to an idle machine's wall time).
    ``clock="wall"`` uses :func:`time.perf_counter` (for GPUs, or an idle machine).
    """
    if clock not in ("process", "wall"):
        raise W2GNUserError(f"clock must be 'process' or 'wall', got {clock!r}")
    now = time.process_time if clock == "process" else time.perf_counter
    opts = method_options(method, pair.dim)
    base = {"iterations": int(max_iterations), "seed": int(seed), "log_every": int(log_every), "device": device,
            "dtype": dtype, "progress": progress}
    if opts is None:
        solver = SOLVERS[method](**base, **overrides)
    else:
        solver = W2GNSolver(W2GNConfig(**{**base, **opts, **overrides}))
    curve: list[dict[str, float]] = []
    budget = TimeBudget(solver, budget_s, max_iterations=int(max_iterations))
    start = now()
    spent_eval = 0.0

    def callback(iteration: int, live, stats: dict[str, float]) -> bool:
        nonlocal spent_eval
        t0 = now()
        train_s = t0 - start - spent_eval
        scores = pair.evaluate(live, n=curve_samples)
        curve.append({"iteration": float(iteration), "seconds": train_s, **scores})
        spent_eval += now() - t0
        return budget.aim(iteration, train_s)  # also re-aims the schedule's horizon at the budget

    fitted = solver.fit(pair.source, pair.target, callback=callback)
    train_seconds = now() - start - spent_eval
    with torch.no_grad():
        final = pair.evaluate(fitted)
    used = {k: v for k, v in solver.config.to_dict().items() if k in (opts or {}) or k in overrides}
    return FitResult(pair.name, pair.dim, method, final["forward_uvp"], final["inverse_uvp"], final["forward_cosine"],
                     final["inverse_cosine"], train_seconds, int(solver.iteration), curve, used)


def markdown_table(results: list[FitResult]) -> str:
    """Results as a Markdown table (one row per fit)."""
    head = ("| pair | D | method | fwd L2-UVP % | inv L2-UVP % | fwd cos | inv cos | seconds | iterations |\n"
            "|---|---:|---|---:|---:|---:|---:|---:|---:|\n")
    rows = [f"| {r.pair} | {r.dim} | {r.method} | {r.forward_uvp:.3f} | {r.inverse_uvp:.3f} | {r.forward_cosine:.4f} | "
            f"{r.inverse_cosine:.4f} | {r.seconds:.0f} | {r.iterations} |" for r in results]
    return head + "\n".join(rows) + "\n"


def baseline_table(pairs: list[BenchmarkPair]) -> str:
    """Markdown table of each pair's trivial-map scores (identity, Gaussian linear map, best affine)."""
    head = ("| pair | D | identity % | identity inv % | linear % | linear inv % | best affine % | Var(P) | Var(Q) |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    rows = []
    for p in pairs:
        b = p.baselines
        rows.append(f"| {p.name} | {p.dim} | {b['identity']:.1f} | {b['identity_inverse']:.1f} | {b['linear']:.1f} | "
                    f"{b['linear_inverse']:.1f} | {b['affine_least_squares']:.1f} | {p.source_variance:.2f} | "
                    f"{p.target_variance:.2f} |")
    return head + "\n".join(rows) + "\n"


def convergence_figure(results: list[FitResult], path) -> None:
    """PNG: forward L2-UVP against training seconds, one panel per pair, one curve per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    pairs = list(dict.fromkeys(r.pair for r in results))
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.4), squeeze=False)
    for ax, name in zip(axes[0], pairs):
        for r in (r for r in results if r.pair == name):
            xs = [c["seconds"] for c in r.curve]
            ys = [max(c["forward_uvp"], 1e-4) for c in r.curve]
            ax.plot(xs, ys, label=r.method)
        ax.set_yscale("log")
        ax.set_xlabel("training seconds")
        ax.set_ylabel("forward L2-UVP %")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def load_results(path) -> list[FitResult]:
    """Read the ``results.json`` written by ``w2gn benchmark`` back into :class:`FitResult` objects."""
    import json
    from pathlib import Path

    data = json.loads(Path(path).read_text())
    return [FitResult(**r) for r in data["results"]]
