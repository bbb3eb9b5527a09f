"""Peer benchmark (issue 22): w2gn against OTT-JAX, POT and the paper's settings on pairs with known OT maps.

Every method runs one after another in this process, each with the same time budget, on the same pair;
forward and inverse L2-UVP are recorded against training seconds (log-spaced evaluations, not counted).
Pin it to one core so that every method gets the same single core:

    PYTHONPATH=src taskset -c 1 python benchmarks/peers.py --dims 8,16,32 --time-budget 120

Writes ``benchmarks/results/peers/peers.{json,md,png}`` (after each dimension, so a long run keeps what it has).
The optional peers come from ``pip install 'w2gn[peers]'``; a missing one is listed as not run, with the reason.
"""

from __future__ import annotations

import os

# one thread for every numerical library, set before any of them is imported (the methods share one core)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from w2gn.io.reports import write_json, write_text  # noqa: E402
from w2gn.testbeds.peer_report import markdown_report, plain, plot_peers  # noqa: E402
from w2gn.testbeds.peers import configure_jax_one_thread, peer_methods, run_peers  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "peers"
PACKAGES = ("w2gn", "torch", "numpy", "POT", "ott-jax", "jax", "jaxlib", "flax", "optax")


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def merge_results(results: list[dict], names: list[str]) -> dict:
    """The first result with the runs of the later ones laid over it, pair by pair and method by method.

    The later files' metadata go under ``meta.merged`` (by the path given), so every row keeps its machine, load and date.
    """
    merged = json.loads(json.dumps(results[0]))
    merged["meta"] = {**merged.get("meta", {}), "merged": {}}
    for name, part in zip(names[1:], results[1:]):
        for dim, entry in part["pairs"].items():
            target = merged["pairs"].setdefault(dim, {**entry, "runs": {}})
            target["runs"].update(entry["runs"])
        for method in part["config"]["methods"]:
            if method not in merged["config"]["methods"]:
                merged["config"]["methods"].append(method)
        merged["config"]["dims"] = sorted(int(d) for d in merged["pairs"])
        merged["not_run"].update(part.get("not_run", {}))
        merged["meta"]["merged"][name] = {
            "runs": {dim: sorted(entry["runs"]) for dim, entry in part["pairs"].items()}, **part.get("meta", {})}
    return merged


def write_reports(merged: dict, out: Path, json_too: bool = True) -> None:
    """``peers.json`` (unless ``json_too`` is false), ``peers.md`` and ``peers.png`` of ``merged`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    if json_too:
        write_json(out / "peers.json", plain(merged))
    write_text(out / "peers.md", markdown_report(merged))
    plot_peers(merged, out / "peers.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="8,16,32")
    ap.add_argument("--methods", default=",".join(peer_methods()))
    ap.add_argument("--family", default="fitted", choices=["fitted", "hard"])
    ap.add_argument("--time-budget", type=float, default=900.0, help="training seconds per method and pair")
    ap.add_argument("--clock", choices=["process", "wall"], default="process",
                    help="process: CPU seconds of this process (robust on a shared machine); wall: perf_counter")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-samples", type=int, default=4096)
    ap.add_argument("--out-dir", default=str(RESULTS))
    ap.add_argument("--append", metavar="JSON", default=None,
                    help="start from this earlier peers.json and add what this run measures to it")
    ap.add_argument("--report-only", metavar="JSON", default=None,
                    help="no runs: rewrite peers.md and peers.png in --out-dir from this earlier peers.json")
    ap.add_argument("--merge", metavar="JSON", nargs="+", default=None,
                    help="no runs: the first peers.json with every method's runs of the later ones put in place of its "
                         "own (e.g. one method rerun on each core), written to --out-dir with the reports")
    args = ap.parse_args()
    if args.merge:
        merged = merge_results([json.loads(Path(f).read_text()) for f in args.merge], args.merge)
        write_reports(merged, Path(args.out_dir))
        print(markdown_report(merged))
        return
    if args.report_only:
        merged = json.loads(Path(args.report_only).read_text())
        write_reports(merged, Path(args.out_dir), json_too=False)
        print(markdown_report(merged))
        return
    torch.set_num_threads(1)
    configure_jax_one_thread()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.platform(),
            "processor": platform.processor(), "cpu_affinity": sorted(os.sched_getaffinity(0)),
            "load_average_start": os.getloadavg(), "versions": _versions()}
    merged: dict = {}
    earlier_meta = None
    if args.append:  # add dimensions (or methods) to an earlier run's results
        merged = json.loads(Path(args.append).read_text())
        earlier_meta = merged.get("meta")  # kept: the earlier rows' machine, load and date
    for dim in (int(d) for d in args.dims.split(",")):
        # one method at a time, saved after each: a long run keeps everything it has measured
        for method in args.methods.split(","):
            part = run_peers([dim], [method], budget_s=args.time_budget, family=args.family, seed=args.seed,
                             n_eval=args.eval_samples, clock=args.clock, log=lambda m: print(m, flush=True))
            if not merged:
                merged = part
            merged["not_run"].update(part["not_run"])
            entry = merged["pairs"].setdefault(str(dim), {**part["pairs"][str(dim)], "runs": {}})
            entry["runs"].update(part["pairs"][str(dim)]["runs"])
            merged["config"]["dims"] = [int(d) for d in merged["pairs"]]
            merged["config"]["methods"] = list(dict.fromkeys([*merged["config"]["methods"], method]))
            merged["meta"] = {**meta, "load_average_end": os.getloadavg(), "wall_seconds": time.perf_counter() - started,
                              **({"earlier": earlier_meta} if earlier_meta else {})}
            write_reports(merged, out)
    print(markdown_report(merged))
    print(f"-> {out}/peers.json, peers.md, peers.png")


if __name__ == "__main__":
    main()
