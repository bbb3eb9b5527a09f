"""Which part of the input layers wants the fast rate: ``frame_ablation.py`` with the convex-quadratic layers'
three parts (``F`` of ``x^T F F^T x``, the linear weights ``W``, the biases ``b``) each at its own multiple of
the learning rate (the library splits off only ``W``: ``linear_input_lr_factor``).

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/input_rate_parts.py --parts '{"F": 10, "W": 10, "b": 100}' \
        --family hard --dim 8 --budget 300 --refine 20 --seed 0

Every argument after ``--parts`` is ``frame_ablation.py``'s; its JSON line is the output.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path

import torch

import w2gn.solvers.w2gn as w2gn_solver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", required=True, help='JSON {"F": k, "W": k, "b": k}: each part\'s rate over lr')
    args, rest = ap.parse_known_args()
    factors = json.loads(args.parts)

    def adam(net, config, lr=None, fused=True):
        # replaces the solver's optimiser builder: the hidden layers at lr, each input part at lr * factor
        lr = config.lr if lr is None else lr
        parts = {"F": [q.quadratic_decomposed for q in net.quadratic_layers],
                 "W": [q.weight for q in net.quadratic_layers],
                 "b": [q.bias for q in net.quadratic_layers if q.bias is not None]}
        taken = {id(p) for ps in parts.values() for p in ps}
        groups = [{"params": [p for p in net.parameters() if id(p) not in taken], "lr": lr}]
        groups += [{"params": ps, "lr": lr * float(factors[k])} for k, ps in parts.items() if ps]
        return torch.optim.Adam(groups, lr=lr, betas=tuple(config.betas), fused=fused)

    w2gn_solver.adam = adam
    script = Path(__file__).with_name("frame_ablation.py")
    sys.argv = [str(script), *rest]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
