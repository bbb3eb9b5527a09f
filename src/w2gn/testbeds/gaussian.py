"""The paper's Gaussian testbed (Section 5.1, C.4): held-out samples with the closed-form truth, L2-UVP of
fitted maps against it, and the paper's Table 1.

Every Gaussian experiment (``w2gn gaussian``, ``w2gn compare``, ``benchmarks/gaussian*.py``) evaluates
through :class:`GaussianEvaluation`, so they all measure the same quantity the same way.
"""

from __future__ import annotations

import torch

from ..distributions import GaussianPair
from ..fitted_map import TransportMap
from ..metrics import l2_uvp

#: Table 1 of the paper: L2-UVP (%) per method and dimension, as printed (strings: "<1", ">50").
PAPER_TABLE1: dict[str, dict[int, str]] = {
    "lsot": dict(zip([2, 4, 8, 16, 32, 64, 128, 256], ["<1", "3.7", "7.5", "14.3", "23", "34.7", "46.9", ">50"])),
    "mm1": dict(zip([2 ** k for k in range(1, 13)],
                    ["<1", "<1", "<1", "<1", "<1", "1.2", "1.4", "1.3", "1.5", "1.6", "1.8", "2.7"])),
    "mm2": dict(zip([2 ** k for k in range(1, 13)],
                    ["<1", "<1", "<1", "<1", "<1", "<1", "1", "1.1", "1.2", "1.3", "1.5", "2.1"])),
    "w2gn": dict(zip([2 ** k for k in range(1, 13)],
                     ["<1", "<1", "<1", "<1", "<1", "<1", "1", "1.1", "1.3", "1.3", "1.8", "1.5"])),
}


class GaussianEvaluation:
    """Fixed held-out samples ``x ~ P``, ``y ~ Q`` of a :class:`~w2gn.distributions.GaussianPair` and their
    images under the true maps, ``T*(x)`` and ``(T*)^{-1}(y)`` (closed form), for scoring fitted maps.

    ``samples`` of each are drawn with a CPU generator seeded by ``seed`` (``x`` first, then ``y``).
    L2-UVP (%) is ``100 * E||T(x) - T*(x)||^2 / Var(Q)`` (:func:`~w2gn.metrics.l2_uvp`); the inverse's
    is normalised by ``Var(P)``.
    """

    def __init__(self, pair: GaussianPair, samples: int, seed: int) -> None:
        self.pair = pair
        gen = torch.Generator().manual_seed(int(seed))
        self.x = pair.source.sample(samples, gen)
        self.y = pair.target.sample(samples, gen)
        self.tx = pair.forward_map(self.x)
        self.ty = pair.inverse_map(self.y)

    def forward(self, fitted: TransportMap) -> float:
        """L2-UVP (%) of ``fitted``'s forward map on the held-out source samples."""
        return l2_uvp(torch.as_tensor(fitted.forward(self.x)), self.tx, self.pair.target.variance)

    def inverse(self, fitted: TransportMap, limit: int | None = None) -> float:
        """L2-UVP (%) of ``fitted``'s inverse map on the first ``limit`` (default all) held-out target samples.

        ``limit`` keeps inverses that solve an optimisation per sample (MM-1) affordable."""
        y, ty = (self.y, self.ty) if limit is None else (self.y[:limit], self.ty[:limit])
        return l2_uvp(torch.as_tensor(fitted.inverse(y)), ty, self.pair.source.variance)

    def identity(self) -> float:
        """L2-UVP (%) of not transporting at all (``T(x) = x``): the reference a fit must beat."""
        return l2_uvp(self.x, self.tx, self.pair.target.variance)
