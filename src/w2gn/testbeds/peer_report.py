"""Tables and figure of the peer benchmark (:mod:`w2gn.testbeds.peers`): times to reach each peer's error.

Reading of issue 22's targets: at every D, ``w2gn-fit`` must reach each peer's final forward L2-UVP at least
10x sooner than the peer itself first reaches it (:func:`peer_rows`, column ``ratio``), and must end below every
peer's final error, forward and inverse. A curve point's ``seconds`` is training time (evaluation excluded; for
POT the fit time of that sample size), so "time to reach" is the seconds of the first point at or below the
level: an upper bound on the true time, since the curve is sampled at log-spaced times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .peers import REFERENCE

#: multiples of a peer's final forward error at which the reference's time to reach it is reported
LEVELS = (2.0, 1.1, 1.0)

#: the speed-up the issue asks for (peer time / w2gn time to reach the peer's final forward error)
TARGET_RATIO = 10.0


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def time_to_reach(curve: Sequence[dict[str, Any]], level: float, key: str = "forward_uvp") -> float | None:
    """Seconds of the first curve point with ``curve[key] <= level`` (``None`` if the curve never gets there)."""
    for row in curve:
        v = row.get(key)
        if _finite(v) and v <= level:
            return float(row["seconds"])
    return None


def final(run: dict[str, Any]) -> dict[str, Any]:
    """The point a run ended with (its last curve point; empty if it recorded none)."""
    return run["curve"][-1] if run.get("curve") else {}


def best(curve: Sequence[dict[str, Any]], key: str) -> float:
    """Lowest finite value of ``key`` along the curve (NaN if none)."""
    vals = [r[key] for r in curve if _finite(r.get(key))]
    return min(vals) if vals else math.nan


def peer_rows(runs: dict[str, dict[str, Any]], reference: str = REFERENCE) -> list[dict[str, Any]]:
    """For every peer of ``reference`` in ``runs``: its final errors, the reference's time to reach
    ``LEVELS`` x the peer's final forward error, the peer's own time to reach that error, and the verdicts.

    ``ratio`` is peer seconds / reference seconds at the peer's final forward error (``None`` when the
    reference never reached it, or the peer has no finite final error); ``ratio_is_lower_bound`` marks a
    reference that was already below the level at its first evaluation (its true time is shorter)."""
    ref = runs[reference]
    ref_curve, ref_end = ref["curve"], final(ref)
    rows = []
    for name, run in runs.items():
        if name == reference:
            continue
        end = final(run)
        fwd, inv = end.get("forward_uvp", math.nan), end.get("inverse_uvp", math.nan)
        row: dict[str, Any] = {"method": name, "final_forward": fwd, "final_inverse": inv,
                               "best_forward": best(run["curve"], "forward_uvp"),
                               "best_inverse": best(run["curve"], "inverse_uvp")}
        for level in LEVELS:
            row[f"w2gn_seconds_{level:g}x"] = time_to_reach(ref_curve, level * fwd) if _finite(fwd) else None
        t_ref = row["w2gn_seconds_1x"]
        t_peer = time_to_reach(run["curve"], fwd) if _finite(fwd) else None
        row["peer_seconds"] = t_peer
        # a diverged peer's final error says little; its best along the way is what it could have given
        bf = row["best_forward"]
        row["w2gn_seconds_at_best"] = time_to_reach(ref_curve, bf) if _finite(bf) else None
        row["ratio"] = t_peer / t_ref if t_ref and t_peer is not None else None
        row["ratio_is_lower_bound"] = bool(t_ref is not None and ref_curve and t_ref == ref_curve[0]["seconds"])
        row["faster_target_met"] = row["ratio"] is not None and row["ratio"] >= TARGET_RATIO
        rf, ri = ref_end.get("forward_uvp", math.nan), ref_end.get("inverse_uvp", math.nan)
        # a peer whose error is not finite (diverged) is beaten by any finite error
        row["ends_below_forward"] = _finite(rf) and (not _finite(fwd) or rf < fwd)
        row["ends_below_inverse"] = _finite(ri) and (not _finite(inv) or ri < inv)
        rows.append(row)
    return rows


def _f(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan"
    if isinstance(v, float):
        if abs(v) >= 1e5:
            return f"{v:.2e}"
        return f"{v:.{digits}g}"
    return str(v)


def _progress(run: dict[str, Any]) -> str:
    end = final(run)
    if "n" in end:
        return f"n = {end['n']}"
    return f"{end['steps']} steps" if "steps" in end else "—"


def markdown_report(result: dict[str, Any], reference: str = REFERENCE) -> str:
    """The benchmark as Markdown: which peers ran, then per D a table of every method and one of the peers
    against ``reference`` (see :func:`peer_rows`)."""
    cfg = result["config"]
    lines = [f"Peer benchmark: {cfg['family']} pairs, {_f(cfg['budget_s'])} s budget per method ({cfg['clock']} clock), "
             f"seed {cfg['seed']}, L2-UVP on {cfg['n_eval']} fixed evaluation samples.", ""]
    if result.get("not_run"):
        lines += ["Not run:"] + [f"- {m}: {why}" for m, why in result["not_run"].items()] + [""]
    for dim, entry in result["pairs"].items():
        runs = entry["runs"]
        b = entry["baselines"]
        lines += [f"### D = {dim} ({entry['pair']}; identity {b['identity']:.1f} / {b['identity_inverse']:.1f} %, "
                  f"linear {b['linear']:.1f} / {b['linear_inverse']:.1f} %, forward / inverse)", "",
                  "| method | final fwd % | final inv % | best fwd % | best inv % | train s | progress | note |",
                  "|---|---:|---:|---:|---:|---:|---|---|"]
        for name, run in runs.items():
            end = final(run)
            note = run.get("error") or ""
            lines.append(f"| {name} | {_f(end.get('forward_uvp'))} | {_f(end.get('inverse_uvp'))} | "
                         f"{_f(best(run['curve'], 'forward_uvp'))} | {_f(best(run['curve'], 'inverse_uvp'))} | "
                         f"{_f(end.get('cumulative_seconds', end.get('seconds')), 4)} | {_progress(run)} | {note[:80]} |")
        lines.append("")
        if reference in runs and len(runs) > 1:
            lines += [f"{reference} against each peer's final forward error e (seconds to reach it; ratio = peer's "
                      f"seconds / {reference}'s at 1x e; target >= {TARGET_RATIO:g}x, and {reference} ending below "
                      "every peer's final error, forward and inverse):", "",
                      "| peer | e = final fwd % | final inv % | w2gn s @ 2e | @ 1.1e | @ e | peer s @ e | ratio | "
                      "10x met | ends below fwd / inv | peer best fwd % | w2gn s @ best |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|"]
            for r in peer_rows(runs, reference):
                ratio = _f(r["ratio"]) if r["ratio"] is not None else "—"
                if r["ratio"] is not None and r["ratio_is_lower_bound"]:
                    ratio = "≥ " + ratio
                lines.append(f"| {r['method']} | {_f(r['final_forward'])} | {_f(r['final_inverse'])} | "
                             f"{_f(r['w2gn_seconds_2x'])} | {_f(r['w2gn_seconds_1.1x'])} | {_f(r['w2gn_seconds_1x'])} | "
                             f"{_f(r['peer_seconds'])} | {ratio} | {'yes' if r['faster_target_met'] else 'no'} | "
                             f"{'yes' if r['ends_below_forward'] else 'no'} / {'yes' if r['ends_below_inverse'] else 'no'} | "
                             f"{_f(r['best_forward'])} | {_f(r['w2gn_seconds_at_best'])} |")
            lines.append("")
    return "\n".join(lines)


def plot_peers(result: dict[str, Any], path: str | Path) -> None:
    """PNG: L2-UVP against training seconds (log-log), one panel per D, one colour per method;
    forward solid, inverse dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    dims = list(result["pairs"])
    methods = list(dict.fromkeys(m for e in result["pairs"].values() for m in e["runs"]))
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, len(dims), figsize=(4.6 * len(dims), 3.9), squeeze=False)
    for ax, dim in zip(axes[0], dims):
        for name, run in result["pairs"][dim]["runs"].items():
            xs = [r["seconds"] for r in run["curve"]]
            for key, style in (("forward_uvp", "-"), ("inverse_uvp", "--")):
                ys = [r.get(key) if _finite(r.get(key)) else math.nan for r in run["curve"]]
                ax.plot(xs, ys, style, color=colours[name], marker="." if len(xs) < 4 else None,
                        label=name if key == "forward_uvp" else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(top=1e3)  # diverged peers reach 1e10 %: the interesting range is below 1000 %
        ax.set_xlabel("training seconds")
        ax.set_ylabel("L2-UVP % (forward solid, inverse dashed)")
        ax.set_title(f"D = {dim}")
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4 if len(dims) == 1 else 7), fontsize=8)
    fig.tight_layout(rect=(0, 0.14 if len(dims) == 1 else 0.08, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def plain(obj: Any) -> Any:
    """``obj`` with NaN and infinities as ``None``, so the JSON file is standard JSON."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
