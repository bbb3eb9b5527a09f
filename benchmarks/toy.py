"""The 2-D toy experiments of Appendix C.3: N(0, I) -> 8/49/100 Gaussians and the Swiss roll.

For each target: fit W2GN (settings of C.3 unless overridden), write the Figure 8-10 style PNG to
``--out`` and print a Markdown table of exact sample W2 (discrete OT on ``--exact-samples`` points),
sliced W2 and, for mixtures, the modes receiving mass. Example::

    python benchmarks/toy.py --iterations 30000            # the paper's length
    python benchmarks/toy.py --iterations 1000 --targets 8gaussians swissroll
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from w2gn.applications.toy import TOY_TARGETS, run_toy, toy_figure

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", nargs="+", default=list(TOY_TARGETS), choices=list(TOY_TARGETS))
    ap.add_argument("--iterations", type=int, default=30000)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--pretrain-iterations", type=int, default=1000)
    ap.add_argument("--snapshots", type=int, nargs="*", default=[200, 2000])
    ap.add_argument("--exact-samples", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.targets:
        res = run_toy(name, snapshots=args.snapshots, exact_samples=args.exact_samples, iterations=args.iterations,
                      batch_size=args.batch_size, pretrain_iterations=args.pretrain_iterations, seed=args.seed,
                      progress=False)
        toy_figure(res, out / f"toy_{name}.png")
        (out / f"toy_{name}.json").write_text(json.dumps({"target": name, "metrics": res.metrics}, indent=2))
        res.fitted.save(out / f"toy_{name}_map.pt")  # re-evaluate later without refitting
        m = res.metrics
        print(f"{name}: {json.dumps(m)}", flush=True)
        rows.append((name, m))
    print()
    print("| target | seed | iterations | on-mode (perfect) | modes strict | W2(T#P,Q) / floor | W2(T^-1#Q,P) / floor "
          "| W2(P,Q) | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, m in rows:
        on = f"{m['on_mode_fraction']:.3f} ({m['on_mode_fraction_perfect']:.3f})" if "modes_total" in m else "-"
        modes = f"{m['modes_covered_strict_count']}/{m['modes_total']}" if "modes_total" in m else "-"
        print(f"| {name} | {args.seed} | {m['iterations']} | {on} | {modes} | {m['w2_forward']:.3f} / {m['w2_q_vs_q']:.3f} "
              f"= {m['w2_forward_over_floor']:.2f}x | {m['w2_inverse']:.3f} / {m['w2_p_vs_p']:.3f} = "
              f"{m['w2_inverse_over_floor']:.2f}x | {m['w2_identity']:.3f} | {m['seconds']:.0f} |")


if __name__ == "__main__":
    main()
