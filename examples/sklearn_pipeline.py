"""The W2GN map as a scikit-learn / POT-style estimator: pipelines, cloning and model selection.

Run:  python examples/sklearn_pipeline.py            (9 fits; about 30 s on a laptop CPU)
      python examples/sklearn_pipeline.py --quick    (a few seconds)
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from w2gn import W2GNTransport
from w2gn.metrics import sliced_wasserstein


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=500, help="training steps")
    ap.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    args = ap.parse_args(argv)
    iterations = 60 if args.quick else args.iterations
    small = dict(iterations=iterations, pretrain_iterations=min(200, iterations), hidden=[32, 32], batch_size=256)

    # Source features in awkward units (one column in thousands), target domain in its own units.
    rng = np.random.default_rng(0)
    Xs = rng.normal(size=(2000, 3)) * [1000.0, 1.0, 0.1] + [5000.0, 0.0, 1.0]
    Xt = rng.normal(size=(1500, 3)) @ np.diag([1.0, 2.0, 0.5]) + [1.0, -1.0, 0.0]

    # 1. POT-style use: fit(Xs=..., Xt=...), transform, inverse_transform.
    est = W2GNTransport(**small, random_state=0)
    est.fit(Xs=(Xs - Xs.mean(0)) / Xs.std(0), Xt=Xt)

    # 2. In a pipeline the scaler standardises the source side only; the target is passed to the
    #    transport step as '<step name>__Xt'. inverse_transform goes back through the scaler.
    pipe = make_pipeline(StandardScaler(), W2GNTransport(**small, random_state=0))
    pipe.fit(Xs, w2gntransport__Xt=Xt)
    mapped = pipe.transform(Xs[:5])
    print("source rows      :", np.round(Xs[:2], 2).tolist())
    print("mapped to target :", np.round(mapped[:2], 2).tolist())
    print("and back         :", np.round(pipe.inverse_transform(mapped[:2]), 2).tolist())

    # 3. Hyper-parameters are plain constructor arguments: clone/get_params/set_params work.
    twin = clone(pipe).set_params(w2gntransport__lr=5e-4)
    print("cloned pipeline lr:", twin.get_params()["w2gntransport__lr"])

    # 4. Model selection with a user metric: a scorer gets (estimator, X, y) and returns "higher is better".
    import torch

    def neg_sliced_w2(estimator, X, y=None):
        gen = torch.Generator().manual_seed(0)
        return -sliced_wasserstein(torch.as_tensor(estimator.transform(X)), torch.as_tensor(Xt), generator=gen)

    scores = cross_val_score(pipe, Xs, cv=2, scoring=neg_sliced_w2, params={"w2gntransport__Xt": Xt})
    print("cross-validated -SW2:", np.round(scores, 4).tolist())
    if not args.quick:
        grid = GridSearchCV(pipe, {"w2gntransport__lambda_cycle": [1.0, 3.0]}, cv=2, scoring=neg_sliced_w2)
        grid.fit(Xs, w2gntransport__Xt=Xt)
        print("best lambda_cycle :", grid.best_params_)


if __name__ == "__main__":
    main()
