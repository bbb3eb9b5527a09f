"""The hard family of benchmark pairs, built as the published continuous W2 benchmark builds its pairs.

Korotin et al. (NeurIPS 2021, "Do neural optimal transport solvers work? A continuous
Wasserstein-2 benchmark", Section 4) make their high-dimensional pairs from

* a source ``P``: a 3-component Gaussian mixture whose components are random linear maps of
  ``N(0, I)`` (standard deviation 0.4) with centres on a grid, scaled so that ``P`` has unit
  variance per coordinate on average (:func:`grid_mixture`, :class:`LinearGaussianMixture`);
* a potential ``psi = psi_1 + psi_2``: two Dense ICNNs (widths ``[max(2D, 64), max(2D, 64),
  max(D, 32)]``, rank 1, strong convexity ``1e-4``), each trained by W2GN with both cycle terms to
  push ``P`` towards its own random 10-component mixture (``scripts/make_hard_pairs.py``; from D = 8 on,
  the mixtures follow the published sampler's layout, :func:`level_mixture`, and each ``psi_i`` is
  fitted by regression onto a discrete OT matching instead, which reaches the published difficulty on
  a CPU budget);
* ``Q = grad psi # P``, centred and scaled.

The centring and scaling are part of the exact map: :class:`NormalizedSumPotential` is
``phi(x) = (sum_i psi_i(x) - <m, x>) / s``, so ``T = grad phi = (grad psi - m) / s``. The scale
is one scalar ``s > 0`` (``Var(Q) = D``: unit variance per coordinate *on average*): a
per-coordinate ``S^{-1} (grad psi - m)`` has Jacobian ``S^{-1} Hess psi``, which is not symmetric
in general, so it would not be the gradient of any function and hence not an OT map.

The trained weights ship as ``w2gn/testbeds/data/hard_d{D}.pt``; :func:`hard_pair` loads them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..distributions import Sampler
from ..errors import W2GNUserError
from ..networks import ConvexPotential, build_potential, potential_spec, register_potential
from .shipped import load_shipped, shipped_dims

#: identity and linear (Gaussian/Bures map) L2-UVP in % of the published high-dimensional pairs
#: (Korotin et al. 2021, Table 2 rows "L" and the identity map; D = 2 ... 64)
PUBLISHED_BASELINES: dict[int, tuple[float, float]] = {
    2: (32.7, 14.1), 4: (42.0, 14.9), 8: (58.6, 27.3), 16: (87.0, 41.6), 32: (121.0, 55.3), 64: (137.0, 63.9),
}
#: relative tolerance of the acceptance band around :data:`PUBLISHED_BASELINES`
BAND = 0.15


def icnn_widths(dim: int) -> list[int]:
    """The benchmark's Dense ICNN widths ``[max(2D, 64), max(2D, 64), max(D, 32)]``."""
    h = max(2 * dim, 64)
    return [h, h, max(dim, 32)]


class LinearGaussianMixture(Sampler):
    """Mixture ``sum_k w_k N(m_k, A_k A_k^T)``: component ``k`` is ``m_k + A_k z`` with ``z ~ N(0, I)``."""

    def __init__(self, means: torch.Tensor, factors: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        means = torch.as_tensor(means, dtype=torch.float64)
        factors = torch.as_tensor(factors, dtype=torch.float64)
        k, d = means.shape
        if factors.shape != (k, d, d):
            raise ValueError(f"factors must be (K, D, D) = {(k, d, d)}, got {tuple(factors.shape)}")
        w = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (k,) or bool((w < 0).any()) or float(w.sum()) <= 0:
            raise ValueError("weights must be K non-negative numbers with a positive sum")
        self.means64 = means
        self.factors64 = factors
        self.weights64 = w / w.sum()
        self.event_shape = (d,)
        self._moved()

    def _moved(self) -> None:
        self._means = self.means64.to(device=self.device, dtype=self.dtype)
        self._factors = self.factors64.to(device=self.device, dtype=self.dtype)
        self._weights = self.weights64.to(device=self.device, dtype=torch.float32)

    @property
    def n_components(self) -> int:
        return int(self.means64.shape[0])

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        comp = torch.multinomial(self._weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, device=self.device, dtype=self.dtype)
        x = self._means[comp]
        # one matmul per component (a gathered (n, D, D) batch would take n D^2 memory)
        for k in range(self.n_components):
            rows = comp == k
            x[rows] += z[rows] @ self._factors[k].T
        return x

    def mean(self) -> torch.Tensor:
        """Exact mean (float64)."""
        return self.weights64 @ self.means64

    def total_variance(self) -> float:
        """Exact ``E||x - E x||^2`` (float64): within-component traces plus the spread of the centres."""
        within = (self.factors64.square().sum(dim=(1, 2)) * self.weights64).sum()
        spread = ((self.means64 - self.mean()).square().sum(1) * self.weights64).sum()
        return float(within + spread)

    def describe(self) -> dict:
        return {**super().describe(), "components": self.n_components, "kind": "linear-gaussian-mixture"}


def grid_mixture(dim: int, components: int, generator: torch.Generator, std: float = 0.4,
                 levels: int = 5) -> LinearGaussianMixture:
    """Equal-weight mixture with centres on a grid and random linear components, unit variance on average.

    Centres: ``components`` distinct random points of the grid ``{0, ..., levels-1}^D``, centred and
    scaled so that their spread contributes ``(1 - std^2)`` per coordinate; components:
    ``A_k = std sqrt(D) G_k / ||G_k||_F`` with ``G_k`` a standard normal matrix (a random linear map
    of ``N(0, I)`` whose average per-coordinate standard deviation is ``std``). Hence
    ``E||x - E x||^2 = D`` exactly.
    """
    if not 0 < std < 1:
        raise W2GNUserError(f"component std must be in (0, 1) for unit total variance, got {std}")
    if dim * math.log(levels) < math.log(components):
        raise W2GNUserError(f"a {levels}^{dim} grid has fewer than {components} points")
    while True:  # distinct grid points (a repeat would merge two components)
        idx = torch.randint(0, levels, (components, dim), generator=generator)
        if torch.unique(idx, dim=0).shape[0] == components:
            break
    c = idx.to(torch.float64)
    c = c - c.mean(0)
    spread = float(c.square().sum(1).mean())
    c = c * math.sqrt(dim * (1.0 - std**2) / spread)
    g = torch.randn(components, dim, dim, generator=generator, dtype=torch.float64)
    a = g * (std * math.sqrt(dim) / g.flatten(1).norm(dim=1))[:, None, None]
    return LinearGaussianMixture(c, a)


def level_mixture(dim: int, components: int, generator: torch.Generator, std: float = 0.4) -> LinearGaussianMixture:
    """Equal-weight mixture laid out as the published benchmark's sampler lays it out, unit variance on average.

    Before scaling: in every coordinate the ``components`` centres take the levels ``0, 1, ..., K-1``
    (unit spacing) in an independent random order, so no two centres share a level in any coordinate;
    component ``k`` is ``c_k + std M_k z`` with ``M_k`` a standard normal matrix whose rows are scaled to
    unit norm (every coordinate of a component has standard deviation ``std``). Then centres and factors are
    divided by one number so that ``E||x - E x||^2 = D``. Unlike :func:`grid_mixture`, ``std`` is the
    width *before* that scaling: with 10 levels the spread of the centres (variance ``(K^2 - 1)/12 = 8.25``
    per coordinate) dominates, and the components end up ~0.14 wide, well apart. (Korotin et al. 2021 describe
    the mixtures as random linear components of std 0.4 with centres on a grid, standardised; this is how
    their published code lays that grid out.)
    """
    if not std > 0:
        raise W2GNUserError(f"component std must be positive, got {std}")
    if components < 1:
        raise W2GNUserError(f"need at least one component, got {components}")
    c = torch.stack([torch.randperm(components, generator=generator) for _ in range(dim)], dim=1).to(torch.float64)
    c = c - (components - 1) / 2.0
    m = torch.randn(components, dim, dim, generator=generator, dtype=torch.float64)
    m = m / m.norm(dim=2, keepdim=True)
    mult = math.sqrt((float(c.square().sum(1).mean()) + dim * std**2) / dim)
    return LinearGaussianMixture(c / mult, std * m / mult)


@register_potential
class NormalizedSumPotential(ConvexPotential):
    """``phi(x) = (sum_i psi_i(x) - <m, x>) / s``: a sum of convex potentials, affinely normalised.

    ``grad phi = (sum_i grad psi_i - m) / s``; with the shift ``m`` the mean of ``sum_i grad psi_i``
    under ``P`` and ``s`` its root mean per-coordinate variance, ``grad phi # P`` has zero mean and
    ``Var = D``. Convex (strongly, when a part is) for any ``m`` and ``s > 0``.
    """

    def __init__(self, dim: int, parts: list[dict[str, Any]]) -> None:
        super().__init__()
        self.dim = int(dim)
        self.event_shape = (self.dim,)
        self.parts = nn.ModuleList(build_potential(spec) for spec in parts)
        self.register_buffer("shift", torch.zeros(self.dim))
        self.register_buffer("scale", torch.ones(()))

    @classmethod
    def from_parts(cls, parts: list[ConvexPotential]) -> NormalizedSumPotential:
        """Wrap trained potentials (weights copied), with ``m = 0`` and ``s = 1``."""
        dim = int(parts[0].dim)  # type: ignore[arg-type]
        out = cls(dim, [potential_spec(p) for p in parts])
        for mine, theirs in zip(out.parts, parts):
            mine.load_state_dict(theirs.state_dict())
        return out.to(next(parts[0].parameters()).dtype)

    def raw_gradient(self, x: torch.Tensor) -> torch.Tensor:
        """``sum_i grad psi_i(x)`` (no graph), for fitting the normalisation."""
        return sum(p.gradient(x, create_graph=False) for p in self.parts)  # type: ignore[return-value]

    @torch.no_grad()
    def normalize(self, x: torch.Tensor, batch_size: int = 8192) -> None:
        """Set ``m`` and ``s`` from samples ``x ~ P`` so that ``grad phi # P`` is centred with ``Var = D``."""
        g = torch.cat([self.raw_gradient(b.to(self.shift.dtype)) for b in x.split(batch_size)])
        m = g.mean(0)
        self.shift.copy_(m)
        self.scale.fill_(math.sqrt(float((g - m).square().sum(1).mean()) / self.dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = sum(p(x) for p in self.parts)
        return (total - x @ self.shift) / self.scale  # type: ignore[operator]

    def gradient_analytic(self, x: torch.Tensor) -> torch.Tensor:
        """``grad phi(x)`` from the parts' explicit gradients (no double backward)."""
        return (sum(p.gradient_analytic(x) for p in self.parts) - self.shift) / self.scale  # type: ignore[attr-defined]

    def constrained_parameters(self) -> list[nn.Parameter]:
        return [q for p in self.parts for q in p.constrained_parameters()]

    def project(self) -> None:
        for p in self.parts:
            p.project()

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim, "parts": [potential_spec(p) for p in self.parts]}


def hard_state(potential: NormalizedSumPotential, source: LinearGaussianMixture, info: dict[str, Any]) -> dict[str, Any]:
    """The plain dictionary stored in ``hard_d{D}.pt`` (weights in float32, as trained)."""
    return {
        "spec": potential_spec(potential),
        "state_dict": {k: v.detach().cpu().clone() for k, v in potential.state_dict().items()},
        "source_means": source.means64.clone(),
        "source_factors": source.factors64.clone(),
        "source_weights": source.weights64.clone(),
        "info": dict(info),
    }


def hard_state_to_pair(state: dict[str, Any], source: str = "state"):
    """A :class:`~w2gn.testbeds.BenchmarkPair` from :func:`hard_state`'s dictionary."""
    from .pairs import BenchmarkPair

    try:
        pot = build_potential(state["spec"])
        pot.load_state_dict(state["state_dict"])
        src = LinearGaussianMixture(state["source_means"], state["source_factors"], state["source_weights"])
        info = dict(state.get("info", {}))
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise W2GNUserError(f"{source}: not a valid hard benchmark-pair file ({exc})") from exc
    return BenchmarkPair(f"hard-d{src.dim}", pot, src, {"family": "hard", **info})


def hard_dims() -> list[int]:
    """Dimensions for which hard-pair weights ship with the package."""
    return shipped_dims("hard")


def hard_pair(dim: int):
    """The shipped hard pair in dimension ``dim`` (see :func:`hard_dims`)."""
    state, source = load_shipped("hard", dim)
    return hard_state_to_pair(state, source)
