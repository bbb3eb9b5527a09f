"""Benchmark pairs with a known, non-linear optimal transport map.

Construction of Korotin et al. (NeurIPS 2021, "Do neural optimal transport solvers work?"): take a
strictly convex potential ``psi`` and a source ``P``, and set ``Q = grad psi # P``. By Brenier's
theorem ``T* = grad psi`` is then the OT map from ``P`` to ``Q`` for the quadratic cost, and its
inverse is ``grad psi^*``, the argmax of the conjugate problem ``max_x <x, y> - psi(x)``.

Two families:

* :func:`random_pair`: ``psi`` a randomly initialised :class:`~w2gn.networks.DenseICNN` plus
  ``beta/2 ||x||^2``, ``P`` a Gaussian mixture;
* :func:`fitted_pair` (the *easy* family): ``psi`` trained with w2gn itself to push a 3-component
  mixture close to a 10-component one, then frozen (weights shipped in ``w2gn/testbeds/data``,
  produced by ``scripts/make_benchmark_pairs.py``); close to linear (Gaussian map 14-16 % L2-UVP);
* :func:`~w2gn.testbeds.hard.hard_pair` (the *hard* family, :mod:`w2gn.testbeds.hard`): built
  as the published W2 benchmark builds its high-dimensional pairs, with its identity and linear
  L2-UVP (``scripts/make_hard_pairs.py``).

:func:`load_pair` gives either family by dimension.

All ground-truth computations run in float64.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any

import torch

from ..conjugate import ConjugateResult, solve_conjugate, solve_conjugate_newton
from ..distributions import GaussianMixture, Sampler
from ..errors import W2GNUserError
from ..metrics import bures_map, cosine_similarity, l2_uvp
from ..networks import ConvexPotential, DenseICNN, build_potential
from .hard import hard_dims, hard_pair
from .shipped import load_shipped, shipped_dims

#: seeds of the fixed evaluation and reference samples (distinct from any training seed)
EVAL_SEED = 2_000_003
REFERENCE_SEED = 2_000_011


class PushforwardSampler(Sampler):
    """``Q = grad psi # P``: draws ``x ~ P`` and returns ``grad psi(x)``.

    The source and the potential are private float64 copies; samples are cast to this sampler's
    :attr:`device`/:attr:`dtype`. The generator must live on :attr:`device`.
    """

    def __init__(self, source: Sampler, potential: ConvexPotential) -> None:
        self.event_shape = tuple(source.event_shape)
        self._source = copy.deepcopy(source).to(self.device, torch.float64)
        self._potential = potential

    def _moved(self) -> None:
        self._source.to(self.device, torch.float64)
        self._potential.to(self.device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        x = self._source.sample(n, generator)
        return self._potential.map(x, batch_size=16384).to(self.device, self.dtype)

    def describe(self) -> dict:
        return {**super().describe(), "pushforward_of": self._source.describe()}


@dataclass
class BenchmarkPair:
    """A source ``P``, a frozen convex potential ``psi`` and ``Q = grad psi # P``.

    Attributes
    ----------
    name:
        e.g. ``"fitted-d8"`` or ``"random-d8-s0"``.
    potential:
        ``psi`` (float64, eval mode, frozen).
    source:
        Sampler of ``P`` (float32 on CPU by default; solvers move it).
    target:
        Sampler of ``Q = grad psi # P``.
    info:
        How the pair was made (plain data).
    """

    name: str
    potential: ConvexPotential
    source: Sampler
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.potential = self.potential.to(torch.float64).eval()
        for p in self.potential.parameters():
            p.requires_grad_(False)
        self.target = PushforwardSampler(self.source, self.potential)

    @property
    def dim(self) -> int:
        return int(self.source.dim)

    # ------------------------------------------------------------------------- ground truth maps
    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        """True OT map ``T*(x) = grad psi(x)`` (computed in float64, returned in ``x``'s dtype)."""
        return self.potential.map(x.detach().to(torch.float64)).to(x.dtype)

    def inverse_map(self, y: torch.Tensor, tol: float = 1e-8, max_iter: int = 100,
                    batch_size: int = 4096) -> torch.Tensor:
        """True inverse map ``(T*)^{-1}(y) = grad psi^*(y)`` by the conjugate problem.

        Solves ``argmax_x <x, y> - psi(x)`` in float64 (:meth:`solve_inverse`) to residual
        ``max_i ||grad psi(x_i) - y_i|| <= tol``. Raises ``RuntimeError`` if the tolerance is not
        reached (the answer would not be ground truth).
        """
        outs = []
        y64 = y.detach().to(torch.float64)
        for s in range(0, y64.shape[0], batch_size):
            res = self.solve_inverse(y64[s : s + batch_size], tol=tol, max_iter=max_iter)
            if not res.converged:
                raise RuntimeError(f"{self.name}: conjugate solve stopped at residual {res.residual:.3g} > {tol:g}")
            outs.append(res.x)
        if not outs:
            return y.new_empty((0, *y.shape[1:]))
        return torch.cat(outs).to(y.dtype)

    def solve_inverse(self, y: torch.Tensor, tol: float = 1e-8, max_iter: int = 100,
                      method: str = "newton") -> ConjugateResult:
        """The raw :class:`~w2gn.conjugate.ConjugateResult` for one batch ``y`` (float64).

        ``method="newton"`` (default): per-row damped Newton
        (:func:`~w2gn.conjugate.solve_conjugate_newton`), quadratically convergent;
        ``"lbfgs"``: batched L-BFGS (:func:`~w2gn.conjugate.solve_conjugate`). Both start at ``x = y``.
        """
        y64 = y.detach().to(torch.float64)
        if method == "newton":
            return solve_conjugate_newton(self.potential, y64, x0=y64, max_iter=max_iter, tol=tol)
        if method == "lbfgs":
            return solve_conjugate(self.potential, y64, x0=y64, max_iter=max_iter, tol=tol)
        raise ValueError(f"unknown method {method!r}; use 'newton' or 'lbfgs'")

    # -------------------------------------------------------------------------------- statistics
    def _fixed_sample(self, n: int, seed: int) -> dict[str, torch.Tensor]:
        """``n`` source points ``x`` (float64, CPU, from ``seed``) and their images ``y`` under the true map."""
        g = torch.Generator().manual_seed(seed)
        src = copy.deepcopy(self.source).to("cpu", torch.float64)
        x = src.sample(n, g)
        return {"x": x, "y": self.forward_map(x)}

    @functools.cached_property
    def _reference(self) -> dict[str, torch.Tensor]:
        return self._fixed_sample(100_000, REFERENCE_SEED)

    @functools.cached_property
    def _eval(self) -> dict[str, torch.Tensor]:
        return self._fixed_sample(16_384, EVAL_SEED)

    @property
    def source_variance(self) -> float:
        """``Var(P) = E||x - E x||^2`` (100k-sample estimate, fixed seed): the inverse L2-UVP's scale."""
        x = self._reference["x"]
        return float((x - x.mean(0)).square().sum(1).mean())

    @property
    def target_variance(self) -> float:
        """``Var(Q)`` (100k-sample estimate, fixed seed): the forward L2-UVP's scale."""
        y = self._reference["y"]
        return float((y - y.mean(0)).square().sum(1).mean())

    def linear_maps(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Affine baselines ``x -> x @ A.T + b`` (float64), from the 100k reference samples.

        ``"gaussian"``: the OT map between Gaussian fits of ``P`` and ``Q`` (what a Gaussian model
        of the data would give; ``"gaussian_inverse"`` the reverse); ``"least_squares"``: the affine
        regression of ``T*(x)`` on ``x``, the best any affine map can do in L2(P).
        """
        x, y = self._reference["x"], self._reference["y"]
        mx, my = x.mean(0), y.mean(0)
        cx = (x - mx).T @ (x - mx) / x.shape[0]
        cy = (y - my).T @ (y - my) / y.shape[0]
        a, b = bures_map(mx, cx, my, cy)
        ai, bi = bures_map(my, cy, mx, cx)
        xa = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)
        sol = torch.linalg.lstsq(xa, y).solution  # (D+1, D)
        return {"gaussian": (a, b), "gaussian_inverse": (ai, bi), "least_squares": (sol[:-1].T, sol[-1])}

    @functools.cached_property
    def baselines(self) -> dict[str, float]:
        """L2-UVP (%) of trivial maps on the evaluation samples: shows the pair is non-trivial.

        ``identity`` / ``identity_inverse``: ``T = id``; ``linear`` / ``linear_inverse``: the
        Gaussian (Bures) map; ``affine_least_squares``: the best affine map.
        """
        ev = self._eval
        x, y = ev["x"], ev["y"]
        maps = self.linear_maps()

        def aff(k: str, t: torch.Tensor) -> torch.Tensor:
            a, b = maps[k]
            return t @ a.T + b

        return {
            "identity": l2_uvp(x, y, self.target_variance),
            "identity_inverse": l2_uvp(y, x, self.source_variance),
            "linear": l2_uvp(aff("gaussian", x), y, self.target_variance),
            "linear_inverse": l2_uvp(aff("gaussian_inverse", y), x, self.source_variance),
            "affine_least_squares": l2_uvp(aff("least_squares", x), y, self.target_variance),
        }

    def evaluate(self, fitted, n: int | None = None) -> dict[str, float]:
        """Scores of a fitted map (anything with ``forward``/``inverse`` on tensors) on fixed samples.

        Returns forward and inverse L2-UVP in % (``100 ||T - T*||^2_P / Var(Q)`` and
        ``100 ||S - (T*)^{-1}||^2_Q / Var(P)``, paper Section 5.1) and the cosine metric of the W2
        benchmark for both directions. The inverse ground truth needs no solve: the evaluation
        targets are ``y_i = grad psi(x_i)``, so ``(T*)^{-1}(y_i) = x_i`` exactly.
        """
        ev = self._eval
        x, y = ev["x"], ev["y"]
        if n is not None:
            x, y = x[:n], y[:n]
        tx = torch.as_tensor(fitted.forward(x.to(torch.float32))).to(torch.float64)
        sy = torch.as_tensor(fitted.inverse(y.to(torch.float32))).to(torch.float64)
        return {
            "forward_uvp": l2_uvp(tx, y, self.target_variance),
            "inverse_uvp": l2_uvp(sy, x, self.source_variance),
            "forward_cosine": cosine_similarity(x, tx, y),
            "inverse_cosine": cosine_similarity(y, sy, x),
        }

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, **self.info}


# ------------------------------------------------------------------------------- the families
def mixture(dim: int, components: int, generator: torch.Generator, spread: float = 4.0, std: float = 1.0) -> GaussianMixture:
    """Equal-weight mixture of ``components`` isotropic Gaussians ``N(m_k, std^2 I)`` in ``R^dim``.

    Means ``m_k ~ N(0, s^2 I)`` with ``s = spread / sqrt(2 dim)``, so two means lie about ``spread``
    apart in every dimension (the modes stay separated relative to ``std`` as ``dim`` grows).
    """
    s = spread / (2.0 * dim) ** 0.5
    means = torch.randn(components, dim, generator=generator, dtype=torch.float64) * s
    return GaussianMixture(means, std=std)


def random_pair(dim: int, seed: int = 0, beta: float = 0.1, hidden: list[int] | None = None,
                components: int = 3, scale: float = 2.0) -> BenchmarkPair:
    """Random pair: ``psi = scale * ICNN_rand + beta/2 ||x||^2``, ``P`` a ``components``-Gaussian mixture.

    ``ICNN_rand`` is a :class:`~w2gn.networks.DenseICNN` with its seeded random initialisation
    (no training); ``beta > 0`` makes ``psi`` strongly convex so that ``grad psi`` is invertible.
    ``scale`` multiplies the network's output weights (``scale`` > 1 bends the map further from
    the identity).
    """
    if dim <= 0:
        raise W2GNUserError(f"dimension must be positive, got {dim}")
    if beta <= 0:
        raise W2GNUserError(f"beta must be positive (strict convexity), got {beta}")
    g = torch.Generator().manual_seed(int(seed))
    src = mixture(dim, components, g)
    h = hidden or [max(32, 2 * dim), max(32, 2 * dim)]
    net = DenseICNN(dim, h, rank=1, strong_convexity=beta, seed=int(seed) + 1).to(torch.float64)
    x = copy.deepcopy(src).to("cpu", torch.float64).sample(4096, g)
    place_kinks(net, x, g)
    with torch.no_grad():
        net.final_layer.weight.mul_(scale)
    info = {"family": "random", "seed": int(seed), "beta": beta, "hidden": h, "components": components, "scale": scale}
    return BenchmarkPair(f"random-d{dim}-s{seed}", net, src, info)


@torch.no_grad()
def place_kinks(net: DenseICNN, x: torch.Tensor, generator: torch.Generator) -> None:
    """Shift each hidden unit's bias so that its activation kinks inside the data.

    At initialisation the convex-quadratic pre-activations are mostly positive, where CELU is the
    identity: the network is then a quadratic and its gradient an affine map. Setting every bias
    so that a random 25-75 % of the samples fall below the unit's kink makes ``grad psi``
    genuinely non-linear on ``P``.
    """
    z = net.quadratic_layers[0](x)
    for quad, lin in zip(net.quadratic_layers[1:], net.convex_layers):
        a = lin(z) + quad(x)
        levels = 0.25 + 0.5 * torch.rand(a.shape[1], generator=generator, dtype=a.dtype)
        cut = torch.stack([torch.quantile(a[:, j], levels[j]) for j in range(a.shape[1])])
        quad.bias.sub_(cut)
        z = net._act(a - cut)


def fitted_dims() -> list[int]:
    """Dimensions for which fitted-pair weights ship with the package."""
    return shipped_dims("fitted")


def fitted_state_to_pair(state: dict[str, Any], source: str = "state") -> BenchmarkPair:
    """Build a :class:`BenchmarkPair` from the dictionary written by ``scripts/make_benchmark_pairs.py``."""
    try:
        pot = build_potential(state["spec"])
        pot.load_state_dict(state["state_dict"])
        src = GaussianMixture(state["source_means"], std=float(state["source_std"]))
        info = dict(state.get("info", {}))
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise W2GNUserError(f"{source}: not a valid benchmark-pair file ({exc})") from exc
    return BenchmarkPair(f"fitted-d{src.dim}", pot, src, {"family": "fitted", **info})


def fitted_pair(dim: int) -> BenchmarkPair:
    """The shipped fitted pair in dimension ``dim`` (see :func:`fitted_dims`)."""
    state, source = load_shipped("fitted", dim)
    return fitted_state_to_pair(state, source)


def load_pair(dim: int, family: str = "easy") -> BenchmarkPair:
    """The shipped pair of ``family`` in dimension ``dim``.

    ``"easy"`` (alias ``"fitted"``): :func:`fitted_pair`, close to linear; ``"hard"``:
    :func:`~w2gn.testbeds.hard.hard_pair`, as far from linear as the published W2 benchmark's pairs.
    """
    if family in ("easy", "fitted"):
        return fitted_pair(dim)
    if family == "hard":
        return hard_pair(dim)
    raise W2GNUserError(f"unknown pair family {family!r}; use 'easy' or 'hard'")


def get_pair(spec: str) -> BenchmarkPair:
    """A pair by name: ``"fitted:D"``, ``"hard:D"`` or ``"random:D[:SEED]"``.

    Also accepted: ``"fitted-dD"``, ``"hard-dD"``, ``"random-dD-sS"``.
    """
    text = spec.strip().lower().replace("-d", ":").replace("-s", ":")
    parts = text.split(":")
    try:
        if parts[0] == "fitted" and len(parts) == 2:
            return fitted_pair(int(parts[1]))
        if parts[0] == "hard" and len(parts) == 2:
            return hard_pair(int(parts[1]))
        if parts[0] == "random" and len(parts) in (2, 3):
            return random_pair(int(parts[1]), seed=int(parts[2]) if len(parts) == 3 else 0)
    except ValueError:
        pass
    raise W2GNUserError(f"unknown benchmark pair {spec!r}; use fitted:D (D in {fitted_dims()}), "
                         f"hard:D (D in {hard_dims()}) or random:D[:SEED]")
