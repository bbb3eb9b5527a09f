"""Do independent fits of one pair make errors that cancel?  Scores every average of saved maps.

For saved maps ``T_1 .. T_K`` of the same shipped pair (``frame_ablation.py --save``), every subset S is scored as
the map ``x -> mean_{k in S} T_k(x)`` (the gradient of the mean potential, itself convex) and the inverse
``y -> mean_{k in S} T_k^{-1}(y)`` (each member's inverse refined by 20 L-BFGS steps, as served). If the members'
errors were independent, the L2-UVP of a K-average would be about the members' mean divided by K; a common
(systematic) error does not average out. The script also prints the correlation of each pair's forward errors,
``<d_i, d_j> / (|d_i| |d_j|)`` with ``d = T - T*`` on the evaluation samples, and what share of the members'
common error (their mean ``d``) an affine function of ``x`` explains.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/frame_ablation.py --family hard --dim 8 --budget 300 \
        --seed S --save m_S.pt                                  # S = 0 .. 3
    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/ensemble_average.py --family hard --dim 8 m_0.pt m_1.pt m_2.pt m_3.pt
"""

from __future__ import annotations

import argparse
import itertools
import json

import torch

from w2gn.fitted_map import TransportMap
from w2gn.testbeds.pairs import load_pair


class _Average:
    """The mean of several maps, forward and inverse."""

    def __init__(self, maps: list[TransportMap]) -> None:
        self.maps = maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(torch.as_tensor(m.forward(x)) for m in self.maps) / len(self.maps)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return sum(torch.as_tensor(m.inverse(y)) for m in self.maps) / len(self.maps)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("maps", nargs="+", help="saved maps of the same pair")
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--family", default="hard", choices=["easy", "hard"])
    ap.add_argument("--eval-samples", type=int, default=16_384, help="the first N of the pair's evaluation samples")
    args = ap.parse_args()
    torch.set_num_threads(1)
    pair = load_pair(args.dim, family=args.family)
    maps = [TransportMap.load(p) for p in args.maps]
    n = args.eval_samples
    x, y = pair._eval["x"][:n].to(torch.float32), pair._eval["y"][:n].to(torch.float64)
    errors = [torch.as_tensor(m.forward(x)).to(torch.float64) - y for m in maps]
    for i, j in itertools.combinations(range(len(maps)), 2):
        c = float((errors[i] * errors[j]).sum() / (errors[i].norm() * errors[j].norm()))
        print(json.dumps({"pair": [args.maps[i], args.maps[j]], "forward_error_correlation": round(c, 3)}))
    common = torch.stack(errors).mean(0)
    xa = torch.cat([pair._eval["x"][:n], torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    residual = common - xa @ torch.linalg.lstsq(xa, common).solution
    print(json.dumps({"common_error_affine_share": round(1 - float(residual.square().sum() / common.square().sum()), 4)}))
    for k in range(1, len(maps) + 1):
        for members in itertools.combinations(range(len(maps)), k):
            s = pair.evaluate(_Average([maps[i] for i in members]), n=n)
            print(json.dumps({"members": [args.maps[i] for i in members], "forward_uvp": round(s["forward_uvp"], 4),
                              "inverse_uvp": round(s["inverse_uvp"], 4)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
