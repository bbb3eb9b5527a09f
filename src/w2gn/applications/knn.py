"""Exact 1-nearest-neighbour classification (Euclidean), in row chunks to bound memory."""

from __future__ import annotations

import numpy as np
import torch


def _t(x) -> torch.Tensor:
    return x.detach().to(torch.float64) if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), dtype=torch.float64)


def one_nn_predict(reference, reference_labels, query, chunk: int = 2048) -> torch.Tensor:
    """Label of the nearest ``reference`` row (Euclidean) for every ``query`` row; ``(M,)`` int64."""
    ref, lab, q = _t(reference), torch.as_tensor(np.asarray(reference_labels)).long(), _t(query)
    ref_sq = ref.square().sum(1)
    out = []
    for s in range(0, q.shape[0], chunk):
        b = q[s : s + chunk]
        # ||b - r||^2 up to the per-row constant ||b||^2, which does not change the argmin
        d = ref_sq[None, :] - 2 * b @ ref.T
        out.append(lab[d.argmin(1)])
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def one_nn_accuracy(reference, reference_labels, query, query_labels) -> float:
    """Fraction of ``query`` rows whose nearest ``reference`` row has the same label."""
    pred = one_nn_predict(reference, reference_labels, query)
    return float((pred == torch.as_tensor(np.asarray(query_labels)).long()).double().mean())
