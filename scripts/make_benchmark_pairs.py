"""Produce the fitted benchmark pairs shipped in ``src/w2gn/testbeds/data`` (deterministic).

For each dimension D: P is a 3-component Gaussian mixture and Q' a 10-component one
(:func:`w2gn.testbeds.mixture`, seeded by D); a W2GN map P -> Q' is trained with w2gn itself
(fixed seed, float32, one thread); its forward potential psi_theta, plus beta/2 ||x||^2 for strict
convexity, is frozen and saved. The benchmark pair is then (P, Q = grad psi # P): Q is close to Q'
but, by construction, grad psi is exactly its OT map from P.

    PYTHONPATH=src python scripts/make_benchmark_pairs.py --dims 2,4,8,16,32,64

Per-dimension settings (:data:`PER_DIM`) apply unless ``--iterations``/``--std`` are given: in
D = 32 and 64 the potential needs more steps and tighter modes before its map is far enough from
affine (best linear map >= 10 % L2-UVP).

Rerunning with the same options and torch version writes the same weights (CPU, one thread).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from w2gn.io import atomic_torch_save
from w2gn.networks import DenseICNN, potential_spec
from w2gn.solvers import W2GNSolver, default_hidden
from w2gn.testbeds import fitted_state_to_pair, mixture, place_kinks

OUT = Path(__file__).resolve().parents[1] / "src" / "w2gn" / "testbeds" / "data"

#: training settings per dimension (what produced the shipped files)
DEFAULT = {"iterations": 2000, "std": 0.35}
PER_DIM = {32: {"iterations": 3000, "std": 0.3}, 64: {"iterations": 3000, "std": 0.3}}


def make(dim: int, iterations: int, beta: float, batch_size: int, lr: float, std: float, pretrain: int = 500) -> dict:
    g = torch.Generator().manual_seed(1000 + dim)
    src = mixture(dim, 3, g, std=std)
    tgt = mixture(dim, 10, g, std=std)
    solver = W2GNSolver(iterations=iterations, batch_size=batch_size, seed=dim, progress=False, lr=lr,
                        pretrain_iterations=pretrain, log_every=max(1, iterations // 10))
    # kinks of every hidden unit placed inside the data: identity pretraining keeps a freshly
    # initialised ICNN in CELU's linear regime, where its gradient is affine and stays nearly so
    pot = DenseICNN(dim, default_hidden(dim), seed=dim).to(torch.float64)
    place_kinks(pot, torch.cat([src.sample(2048, g), tgt.sample(2048, g)]).to(torch.float64), g)
    fitted = solver.fit(src, tgt, potential=pot.to(torch.float32))
    pot = fitted.forward_potential
    pot.strong_convexity = float(beta)
    return {
        "spec": potential_spec(pot),
        "state_dict": {k: v.detach().cpu().clone() for k, v in pot.state_dict().items()},
        "source_means": src.means64.clone(),
        "source_std": src.std,
        "info": {
            "fitted_to": "10-component Gaussian mixture",
            "target_means": tgt.means64.tolist(),
            "target_std": tgt.std,
            "iterations": iterations,
            "batch_size": batch_size,
            "lr": lr,
            "beta": beta,
            "torch": str(torch.__version__),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="2,4,8,16,32,64")
    ap.add_argument("--iterations", type=int, default=None, help="W2GN steps (default: PER_DIM, else 2000)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--std", type=float, default=None,
                    help="component standard deviation, means ~4 apart (default: PER_DIM, else 0.35)")
    ap.add_argument("--beta", type=float, default=0.05)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{'D':>4} {'seconds':>8} {'id UVP %':>9} {'lin UVP %':>9} {'affine %':>9}")
    for dim in [int(d) for d in args.dims.split(",")]:
        t0 = time.perf_counter()
        cfg = {**DEFAULT, **PER_DIM.get(dim, {})}
        iterations = args.iterations if args.iterations is not None else cfg["iterations"]
        std = args.std if args.std is not None else cfg["std"]
        state = make(dim, iterations, args.beta, args.batch_size, args.lr, std)
        path = args.out / f"fitted_d{dim}.pt"
        atomic_torch_save(state, path)
        pair = fitted_state_to_pair(torch.load(path, weights_only=True), str(path))
        b = pair.baselines
        print(f"{dim:>4} {time.perf_counter() - t0:8.1f} {b['identity']:9.1f} {b['linear']:9.1f} "
              f"{b['affine_least_squares']:9.1f}", flush=True)


if __name__ == "__main__":
    main()
