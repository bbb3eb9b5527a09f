"""The same domain-adaptation task with POT's ``ot.da`` estimators and with ``w2gn.W2GNTransport``.

Source and target are Gaussians (``GaussianPair.random``), so the optimal map T* is known in closed form.
Each estimator is fitted on ``--train`` samples per side and then maps ``--test`` *new* source samples
(out-of-sample); the table reports L2-UVP (paper, eq. 16: 100 * E||T(x) - T*(x)||^2 / Var(Q), %) on the
new samples, fit time and transform time.

    python benchmarks/estimator_vs_pot.py --dims 2 8 --train 2000 --test 10000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import ot
import torch

from w2gn import GaussianPair, W2GNTransport
from w2gn.metrics import l2_uvp


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--train", type=int, default=2000, help="training samples per side")
    ap.add_argument("--test", type=int, default=10000, help="new source samples mapped after fitting")
    ap.add_argument("--iterations", type=int, default=2000, help="W2GN training steps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", nargs="*", default=None,
                    help="run only estimators whose name contains one of these words (e.g. W2GN EMD)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("| D | estimator | L2-UVP % (new samples) | fit s | transform s |")
    print("|---|---|---|---|---|")
    for d in args.dims:
        pair = GaussianPair.random(d, seed=0)
        gen = torch.Generator().manual_seed(1)
        xs = pair.source.sample(args.train, gen).double().numpy()
        xt = pair.target.sample(args.train, gen).double().numpy()
        x_new = pair.source.sample(args.test, gen).double()
        truth = pair.forward_map(x_new.float()).double()
        estimators = {
            "identity (no transport)": None,
            "ot.da.EMDTransport()": ot.da.EMDTransport(),
            "ot.da.SinkhornTransport(reg_e=0.1)": ot.da.SinkhornTransport(reg_e=0.1),
            "ot.da.MappingTransport(kernel='linear', bias=True)": ot.da.MappingTransport(
                kernel="linear", mu=1.0, eta=1e-3, bias=True),
            f"w2gn.W2GNTransport(iterations={args.iterations})": W2GNTransport(
                iterations=args.iterations, pretrain_iterations=500, batch_size=512, random_state=0),
        }
        for name, est in estimators.items():
            if args.only and est is not None and not any(w.lower() in name.lower() for w in args.only):
                continue
            t0 = time.perf_counter()
            if est is not None:
                est.fit(Xs=xs, Xt=xt)
            t1 = time.perf_counter()
            mapped = x_new.numpy() if est is None else est.transform(Xs=x_new.numpy())
            t2 = time.perf_counter()
            uvp = float(l2_uvp(torch.as_tensor(np.asarray(mapped)).double(), truth, pair.target.variance))
            print(f"| {d} | {name} | {uvp:.2f} | {t1 - t0:.1f} | {t2 - t1:.2f} |")


if __name__ == "__main__":
    main()
