"""Method comparison on the paper's Gaussian benchmark (Section 5.1: Table 1 and Figure 2).

:func:`compare_gaussian` fits every method on the same random Gaussian pair per dimension (same pair
seed, same solver seed, same Dense ICNN widths and batch size), tracks the forward L2-UVP against
iterations and training seconds, and :func:`time_to_accuracy` turns the curves into the paper's
"W2GN converges several times faster" claim: seconds for a baseline to reach the L2-UVP that W2GN
reaches, divided by W2GN's seconds.

Timing: a curve's ``seconds`` is time spent in the training loop, with the evaluation done at
logging steps subtracted; the identity pretraining shared by all methods (``setup_seconds``) is
reported separately and is not in the curves. ``clock="wall"`` (default) measures wall-clock
seconds; ``clock="cpu"`` measures the process's CPU seconds (``time.process_time``), which is the
robust choice on a machine shared with other jobs (run with one torch thread so that CPU seconds
equal single-core seconds). Both are kept in every curve point (``wall_seconds``, ``cpu_seconds``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..distributions import GaussianPair
from ..errors import W2GNUserError
from ..solvers import SOLVERS, get_solver
from .gaussian import PAPER_TABLE1, GaussianEvaluation

METHOD_LABELS = {"w2gn": "W2GN", "lsot": "LSOT", "mm1": "MM-1", "mm2": "MM-2"}


def paper_hidden(dim: int, floor: int = 32) -> list[int]:
    """Dense ICNN widths ``[D, D, D/2]`` of C.4, each at least ``floor`` (``floor // 2`` for the last).

    ``floor=1`` gives the paper's sizes exactly (``[2, 2, 1]`` at ``D = 2``).
    """
    f = max(1, int(floor))
    return [max(dim, f), max(dim, f), max(dim // 2, f // 2, 1)]


def time_to_accuracy(curve: Sequence[dict[str, float]], target: float, key: str = "l2_uvp") -> float | None:
    """Seconds of the first curve point with ``curve[key] <= target`` (``None`` if never reached)."""
    for row in curve:
        if row[key] <= target:
            return float(row["seconds"])
    return None


def accuracy_ratios(curves: dict[str, list[dict[str, float]]], reference: str = "w2gn",
                    target: float | None = None) -> dict[str, Any]:
    """Time-to-accuracy of every method relative to ``reference``.

    ``target`` defaults to the reference's final L2-UVP. Returns ``{"target": ..., "reference_seconds": ...,
    "methods": {name: {"seconds": s or None, "ratio": s / reference_seconds or None,
    "lower_bound": ratio bound when not reached (total seconds / reference seconds)}}}``.
    """
    ref = curves[reference]
    if not ref:
        raise ValueError(f"empty curve for {reference!r}")
    tgt = float(ref[-1]["l2_uvp"]) if target is None else float(target)
    ref_s = time_to_accuracy(ref, tgt)
    out: dict[str, Any] = {"target": tgt, "reference": reference, "reference_seconds": ref_s, "methods": {}}
    for name, curve in curves.items():
        s = time_to_accuracy(curve, tgt) if curve else None
        entry: dict[str, Any] = {"seconds": s, "ratio": None, "lower_bound": None}
        if ref_s:
            if s is not None:
                entry["ratio"] = s / ref_s
            elif curve:
                entry["lower_bound"] = float(curve[-1]["seconds"]) / ref_s
        out["methods"][name] = entry
    return out


def compare_gaussian(
    dims: Sequence[int],
    methods: Sequence[str],
    iterations: int | dict[str, int] = 2000,
    batch_size: int = 512,
    lr: float = 1e-3,
    hidden_floor: int = 32,
    pretrain_iterations: int = 1000,
    eval_every: int = 50,
    eval_samples: int = 4096,
    time_budget: float | None = None,
    clock: str = "wall",
    fixed_targets: Sequence[float] = (1.0,),
    pair_seed: int = 0,
    family: str = "centred",
    precondition: str = "none",
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    method_options: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fit every method in ``methods`` on the Gaussian pair of every dimension in ``dims``.

    Parameters
    ----------
    iterations: training steps per method (one number, or per method name).
    time_budget: stop a method once its training seconds exceed this (``None``: no limit); the
        paper trains to convergence, a budget keeps a CPU comparison affordable.
    clock: ``"wall"`` or ``"cpu"``: which seconds the curves, the budget and the ratios use.
    fixed_targets: L2-UVP levels (%) at which time-to-accuracy ratios are also reported (``ratios_at``),
        less sensitive to the noise of W2GN's last evaluation than its final value.
    hidden_floor: see :func:`paper_hidden`.
    eval_every: iterations between L2-UVP evaluations (the curve's resolution).
    method_options: extra solver options per method name (e.g. ``{"mm1": {"inner_iterations": 20}}``).
    family: ``"centred"`` (the paper's pairs) or ``"offset"`` (non-zero means, wider spectra; see
        :meth:`~w2gn.distributions.GaussianPair.random`).
    precondition: the frame every method trains in (:mod:`w2gn.affine_frame`); ``"none"`` is the
        paper's setting, ``"bures"`` what ``w2gn fit`` uses.

    Returns a plain-data dict: ``{"settings": ..., "runs": [{"dim", "method", "l2_uvp",
    "l2_uvp_inverse", "l2_uvp_identity", "seconds", "setup_seconds", "iterations", "stopped_by_budget",
    "curve": [{"iteration", "seconds", "l2_uvp"}]}, ...], "ratios": {dim: accuracy_ratios(...)}}``.
    """
    unknown = [m for m in methods if m not in SOLVERS]
    if unknown:
        raise W2GNUserError(f"unknown method(s) {unknown}; choose from {', '.join(sorted(SOLVERS))}")
    if not dims:
        raise W2GNUserError("no dimensions given")
    if clock not in ("wall", "cpu"):
        raise W2GNUserError(f"clock must be 'wall' or 'cpu', got {clock!r}")
    say = log or (lambda _msg: None)
    per_method = method_options or {}
    runs: list[dict[str, Any]] = []
    ratios: dict[str, Any] = {}
    ratios_at: dict[str, dict[str, Any]] = {f"{t:g}": {} for t in fixed_targets}
    for dim in dims:
        pair = GaussianPair.random(int(dim), seed=pair_seed, family=family)
        ev = GaussianEvaluation(pair, eval_samples, seed=12345 + int(dim))
        ident = ev.identity()
        curves: dict[str, list[dict[str, float]]] = {}
        for method in methods:
            its = iterations[method] if isinstance(iterations, dict) else iterations
            opts = {"iterations": int(its), "batch_size": batch_size, "lr": lr, "hidden": paper_hidden(dim, hidden_floor),
                    "pretrain_iterations": pretrain_iterations, "log_every": eval_every, "seed": seed,
                    "precondition": precondition, "device": device, "dtype": dtype, "progress": progress,
                    **per_method.get(method, {})}
            solver, fitted, curve, st = _fit_tracked(method, opts, pair, ev, time_budget, clock)
            train_s = curve[-1]["seconds"] if curve else float("nan")
            final = curve[-1]["l2_uvp"] if curve else ev.forward(fitted)
            inv = ev.inverse(fitted, limit=1024)  # MM-1's inverse is an inner solve per sample: keep it affordable
            run = {"dim": int(dim), "method": method, "l2_uvp": final, "l2_uvp_inverse": inv, "l2_uvp_identity": ident,
                   "seconds": train_s, "setup_seconds": st["setup"],
                   "setup_cpu_seconds": st["setup_cpu"], "iterations": solver.iteration,
                   "stopped_by_budget": bool(st["stopped"]), "paper_l2_uvp": PAPER_TABLE1.get(method, {}).get(int(dim)),
                   "hidden": opts["hidden"], "curve": curve}
            runs.append(run)
            curves[method] = curve
            say(f"D={dim:<4} {METHOD_LABELS.get(method, method):5s} L2-UVP {final:8.3f}%  inverse {inv:8.3f}%  "
                f"{solver.iteration} it  {train_s:7.1f} {clock} s" + ("  (time budget)" if st["stopped"] else ""))
        if "w2gn" in curves and curves["w2gn"]:
            ratios[str(dim)] = accuracy_ratios(curves, "w2gn")
            for t in fixed_targets:
                ratios_at[f"{t:g}"][str(dim)] = accuracy_ratios(curves, "w2gn", target=t)
    settings = {"dims": [int(d) for d in dims], "methods": list(methods), "iterations": iterations,
                "batch_size": batch_size, "lr": lr, "hidden_floor": hidden_floor,
                "pretrain_iterations": pretrain_iterations, "eval_every": eval_every, "eval_samples": eval_samples,
                "time_budget": time_budget, "clock": clock, "pair_seed": pair_seed, "family": family,
                "precondition": precondition, "seed": seed, "device": device,
                "dtype": dtype,
                "method_options": per_method, "torch_threads": torch.get_num_threads()}
    return {"settings": settings, "runs": runs, "ratios": ratios, "ratios_at": ratios_at}


def _fit_tracked(method: str, opts: dict[str, Any], pair: GaussianPair, ev: GaussianEvaluation,
                 time_budget: float | None, clock: str = "wall"):
    """Fit one method, recording ``{"iteration", "seconds", "wall_seconds", "cpu_seconds", "l2_uvp"}``
    at every logging step.

    Both clocks exclude the evaluation itself and the solver's ``setup`` (network construction and
    identity pretraining), whose duration is kept in ``state["setup"]`` (wall) / ``state["setup_cpu"]``.
    """
    solver = get_solver(method, **opts)
    curve: list[dict[str, float]] = []
    state: dict[str, Any] = {"eval": 0.0, "eval_cpu": 0.0, "setup": 0.0, "setup_cpu": 0.0, "stopped": False}
    setup = solver.setup

    def timed_setup(*args: Any, **kwargs: Any) -> None:
        w, c = time.perf_counter(), time.process_time()
        setup(*args, **kwargs)
        state["setup"], state["setup_cpu"] = time.perf_counter() - w, time.process_time() - c
        state["wall0"], state["cpu0"] = time.perf_counter(), time.process_time()

    solver.setup = timed_setup  # type: ignore[method-assign]

    def track(it: int, fitted, row: dict[str, float]) -> bool:
        w0, c0 = time.perf_counter(), time.process_time()
        wall = w0 - state["wall0"] - state["eval"]
        cpu = c0 - state["cpu0"] - state["eval_cpu"]
        uvp = ev.forward(fitted)
        secs = cpu if clock == "cpu" else wall
        curve.append({"iteration": float(it), "seconds": secs, "wall_seconds": wall, "cpu_seconds": cpu, "l2_uvp": uvp})
        state["eval"] += time.perf_counter() - w0
        state["eval_cpu"] += time.process_time() - c0
        if time_budget is not None and secs >= time_budget:
            state["stopped"] = True
            return True
        return False

    fitted = solver.fit(pair.source, pair.target, callback=track)
    return solver, fitted, curve, state


def _fmt(v: float | None, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}"


def markdown_report(result: dict[str, Any]) -> str:
    """Markdown tables: L2-UVP per method and dimension beside Table 1, wall times, time-to-accuracy."""
    runs = result["runs"]
    dims = result["settings"]["dims"]
    methods = result["settings"]["methods"]
    by = {(r["dim"], r["method"]): r for r in runs}
    head = "| Method | " + " | ".join(f"D={d}" for d in dims) + " |\n|---|" + "---|" * len(dims) + "\n"
    lines = ["### Forward L2-UVP (%), ours (paper's Table 1 in brackets)", "", head.rstrip("\n")]
    for m in methods:
        cells = []
        for d in dims:
            r = by.get((d, m))
            paper = PAPER_TABLE1.get(m, {}).get(d, "-")
            cells.append(f"{_fmt(r['l2_uvp'])} ({paper})" if r else "-")
        lines.append(f"| {METHOD_LABELS.get(m, m)} | " + " | ".join(cells) + " |")
    ident = [by.get((d, methods[0])) for d in dims]
    lines.append("| identity map | " + " | ".join(_fmt(r["l2_uvp_identity"], 1) if r else "-" for r in ident) + " |")
    lines += ["", "### Inverse L2-UVP (%)", "", head.rstrip("\n")]
    for m in methods:
        lines.append(f"| {METHOD_LABELS.get(m, m)} | " + " | ".join(
            _fmt(by[(d, m)]["l2_uvp_inverse"]) if (d, m) in by else "-" for d in dims) + " |")
    clock = result["settings"].get("clock", "wall")
    lines += ["", f"### Training seconds ({clock}) / iterations run (* = stopped by the time budget)", "", head.rstrip("\n")]
    for m in methods:
        cells = []
        for d in dims:
            r = by.get((d, m))
            cells.append(f"{r['seconds']:.1f} s / {r['iterations']}{'*' if r['stopped_by_budget'] else ''}" if r else "-")
        lines.append(f"| {METHOD_LABELS.get(m, m)} | " + " | ".join(cells) + " |")
    tables = [("W2GN's final L2-UVP", result.get("ratios", {}))]
    tables += [(f"L2-UVP <= {t}%", r) for t, r in result.get("ratios_at", {}).items()]
    for title, table in tables:
        if table:
            lines += ["", _ratio_table(title, table, dims, methods)]
    return "\n".join(lines) + "\n"


def _ratio_table(title: str, table: dict[str, Any], dims: Sequence[int], methods: Sequence[str]) -> str:
    others = [m for m in methods if m != "w2gn"]
    lines = [f"### Time-to-accuracy ratio at {title}: a method's seconds to reach it / W2GN's seconds", "",
             "| D | target L2-UVP (%) | W2GN s | " + " | ".join(METHOD_LABELS.get(m, m) for m in others) + " |",
             "|---|---|---|" + "---|" * len(others)]
    for d in dims:
        rat = table.get(str(d))
        if not rat:
            continue
        cells = []
        for m in others:
            e = rat["methods"][m]
            if e["ratio"] is not None:
                cells.append(f"{e['ratio']:.1f}x ({e['seconds']:.1f} s)")
            elif e["lower_bound"] is not None:
                cells.append(f"> {e['lower_bound']:.1f}x (not reached)")
            else:
                cells.append("-")
        ref = "not reached" if rat["reference_seconds"] is None else f"{rat['reference_seconds']:.1f}"
        lines.append(f"| {d} | {rat['target']:.3g} | {ref} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_convergence(result: dict[str, Any], path: str | Path) -> Path:
    """The paper's Figure 2: L2-UVP against training seconds (top) and iterations (bottom), per dimension."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import atomic_path

    dims = result["settings"]["dims"]
    methods = result["settings"]["methods"]
    by = {(r["dim"], r["method"]): r for r in result["runs"]}
    fig, axes = plt.subplots(2, len(dims), figsize=(3.2 * len(dims), 5.6), squeeze=False)
    for j, d in enumerate(dims):
        for m in methods:
            r = by.get((d, m))
            if not r or not r["curve"]:
                continue
            c = r["curve"]
            uvp = [max(p["l2_uvp"], 1e-4) for p in c]
            label = METHOD_LABELS.get(m, m)
            axes[0, j].semilogy([p["seconds"] for p in c], uvp, label=label)
            axes[1, j].semilogy([p["iteration"] for p in c], uvp, label=label)
        axes[0, j].set_title(f"D={d}")
        axes[0, j].set_xlabel("training seconds")
        axes[1, j].set_xlabel("iteration")
        for i in range(2):
            axes[i, j].axhline(1.0, color="grey", lw=0.7, ls="--")
            axes[i, j].grid(alpha=0.3)
    axes[0, 0].set_ylabel("L2-UVP, %")
    axes[1, 0].set_ylabel("L2-UVP, %")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return out
