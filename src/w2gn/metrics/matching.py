"""The exact discrete OT matching between two equal-size samples (POT's network simplex)."""

from __future__ import annotations

import numpy as np
import torch


def discrete_ot_match(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``y`` reordered so that ``y[i]`` is the partner of ``x[i]`` under the exact discrete OT plan for the
    squared Euclidean cost (shapes ``(N, D)`` each, equal weights ``1/N``).

    With equal sizes and weights the plan's extreme points are permutations and the network simplex
    returns one, so every row of the plan has a single non-zero entry; a plan that is not a permutation
    (degenerate costs) raises ``RuntimeError``. Used to build regression targets for the OT map and to
    estimate how far a sample pair is from the identity and from linear."""
    import ot

    n = x.shape[0]
    w = np.full(n, 1.0 / n)
    plan = ot.emd(w, w, ot.dist(x.double().numpy(), y.double().numpy()), numItermax=10**8)
    if not ((plan > 0).sum(1) == 1).all():
        raise RuntimeError("the discrete OT plan is not a permutation (degenerate costs?)")
    return y[torch.as_tensor(plan.argmax(1))]


__all__ = ["discrete_ot_match"]
