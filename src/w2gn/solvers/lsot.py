"""LSOT: regularised-dual OT with a barycentric-projection map (Seguy et al., 2017).

"Large-scale optimal transport and mapping estimation", Algorithms 1 and 2, as set up in the W2GN
paper's Appendix C.4:

1. **Dual** (first ``dual_iterations`` steps). Two unconstrained potentials ``u, v`` maximise the
   regularised dual over all ``B x B`` pairs of a minibatch:

   * L2 (default): ``E_P u + E_Q v - 1/(4 eps) E_{PxQ} [(u(x) + v(y) - c(x, y))_+^2]``,
   * entropic:     ``E_P u + E_Q v - eps E_{PxQ} exp((u(x) + v(y) - c(x, y)) / eps)``

   (the conventions of POT's ``ot.stochastic.loss_dual_quadratic`` / ``loss_dual_entropic``).
   The plan's density w.r.t. ``P x Q`` is ``H = (u + v - c)_+ / (2 eps)`` (L2) or
   ``exp((u + v - c) / eps)`` (entropic).
2. **Barycentric projection** (remaining steps, ``u, v`` frozen). A map network ``f`` minimises
   ``E_{PxQ} [H(x, y) ||f(x) - y||^2]``, so ``f(x) ~ E_pi[y | x]``. With ``fit_inverse`` a second
   network ``g`` minimises ``E [H ||g(y) - x||^2]`` for the inverse direction.

**Cost convention.** ``cost="half"`` (default) uses ``c(x, y) = ||x - y||^2 / 2``, as the W2GN paper
writes LSOT (C.4); ``cost="full"`` uses POT's default ``||x - y||^2``. The potentials are
parametrised as in C.4 with the same Dense ICNN architecture as the other methods but *without*
convexity constraints: ``u(x) = s (||x||^2 / 2 - psi_theta(x))``, ``v(y) = s (||y||^2 / 2 - psi_omega(y))``
with ``s = 1`` (half) or ``2`` (full), so ``u + v - c = s (<x, y> - psi_theta(x) - psi_omega(y))``.
With the full cost, ``eps`` acts on a cost twice as large, i.e. like ``eps / 2`` under the half cost.

The fitted map is a direct map network (not a gradient), so the returned
:class:`~w2gn.fitted_map.TransportMap` has ``forward_network`` (and ``inverse_network``) and no
potential.
"""

from __future__ import annotations

import copy
import dataclasses

import torch

from ..distributions import Sampler
from ..errors import W2GNUserError
from ..fitted_map import TransportMap
from ..networks import DenseMap
from .base import Solver
from .icnn_config import PotentialConfig, adam, default_hidden, pretrained_potential

_COST_SCALE = {"half": 1.0, "full": 2.0}


def transport_cost(x: torch.Tensor, y: torch.Tensor, cost: str = "half") -> torch.Tensor:
    """Pairwise cost matrix ``(B_x, B_y)``: ``||x_i - y_j||^2 / 2`` (``"half"``) or ``||x_i - y_j||^2`` (``"full"``)."""
    if cost not in _COST_SCALE:
        raise ValueError(f"cost must be 'half' or 'full', got {cost!r}")
    sq = (x.square().sum(1)[:, None] + y.square().sum(1)[None, :] - 2.0 * x @ y.T).clamp_min(0.0)
    return 0.5 * _COST_SCALE[cost] * sq


def _slack(u, v, x, y, cost):
    return u[:, None] + v[None, :] - transport_cost(x, y, cost)


def lsot_dual_objective(u: torch.Tensor, v: torch.Tensor, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                        regularizer: str = "l2", cost: str = "half") -> torch.Tensor:
    """The regularised dual objective (to *maximise*) on a minibatch, all pairs (Seguy et al., eq. 6-7).

    ``u``: ``(B_x,)`` values of ``u`` at ``x`` ``(B_x, D)``; ``v``: ``(B_y,)`` values at ``y``. Returns
    ``mean u + mean v + mean_ij F_ij`` with ``F = -(u_i + v_j - c_ij)_+^2 / (4 eps)`` (``"l2"``) or
    ``-eps exp((u_i + v_j - c_ij) / eps)`` (``"entropy"``): equal to POT's ``loss_dual_quadratic`` /
    ``loss_dual_entropic`` with uniform weights and the same cost matrix.
    """
    s = _slack(u, v, x, y, cost)
    if regularizer == "l2":
        penalty = -torch.relu(s).square().mean() / (4.0 * epsilon)
    elif regularizer == "entropy":
        penalty = -epsilon * torch.exp(s / epsilon).mean()
    else:
        raise ValueError(f"regularizer must be 'l2' or 'entropy', got {regularizer!r}")
    return u.mean() + v.mean() + penalty


def lsot_plan_density(u: torch.Tensor, v: torch.Tensor, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                      regularizer: str = "l2", cost: str = "half") -> torch.Tensor:
    """Density ``H_ij`` of the regularised plan w.r.t. ``P x Q`` on a minibatch, shape ``(B_x, B_y)``.

    ``(u_i + v_j - c_ij)_+ / (2 eps)`` (L2) or ``exp((u_i + v_j - c_ij) / eps)`` (entropy). POT's
    ``plan_dual_*`` with uniform weights equals ``H / (B_x B_y)``; at the optimum ``E H = 1``.
    """
    s = _slack(u, v, x, y, cost)
    if regularizer == "l2":
        return torch.relu(s) / (2.0 * epsilon)
    if regularizer == "entropy":
        return torch.exp(s / epsilon)
    raise ValueError(f"regularizer must be 'l2' or 'entropy', got {regularizer!r}")


def barycentric_loss(mapped: torch.Tensor, targets: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
    """``mean_ij H_ij ||mapped_i - targets_j||^2`` (Seguy et al., Algorithm 2) without a ``B x B x D`` tensor.

    ``mapped``: ``(B_x, D)`` = ``f(x_i)``; ``targets``: ``(B_y, D)``; ``density``: ``(B_x, B_y)``.
    """
    rows = density.sum(1)
    cols = density.sum(0)
    total = (rows * mapped.square().sum(1)).sum() - 2.0 * (mapped * (density @ targets)).sum() + (
        cols * targets.square().sum(1)).sum()
    return total / density.numel()


@dataclasses.dataclass
class LSOTConfig(PotentialConfig):
    """Hyper-parameters of :class:`LSOTSolver` (defaults: W2GN paper, C.4).

    ``epsilon`` (0.01), ``regularizer`` (``"l2"`` or ``"entropy"``), ``cost`` (``"half"`` or
    ``"full"``, see the module doc); ``dual_iterations``: length of the dual phase (``None`` = half
    of ``iterations``; the rest fits the map); ``convexify``: clip the potentials' weights like an
    ICNN (off: C.4 found unconstrained nets best); ``map_hidden``/``map_activation``/``map_lr``: the
    :class:`~w2gn.networks.DenseMap` regressed by barycentric projection (``None`` = the potentials'
    widths / ``lr``); ``fit_inverse``: also fit the inverse map network.
    """

    epsilon: float = 0.01
    regularizer: str = "l2"
    cost: str = "half"
    dual_iterations: int | None = None
    convexify: bool = False
    map_hidden: list[int] | None = None
    map_activation: str = "relu"
    map_lr: float | None = None
    fit_inverse: bool = True

    def validate(self) -> None:
        super().validate()
        if not self.epsilon > 0:
            raise W2GNUserError(f"epsilon must be positive, got {self.epsilon}")
        if self.regularizer not in ("l2", "entropy"):
            raise W2GNUserError(f"regularizer must be 'l2' or 'entropy', got {self.regularizer!r}")
        if self.cost not in _COST_SCALE:
            raise W2GNUserError(f"cost must be 'half' or 'full', got {self.cost!r}")
        if self.dual_iterations is not None and not 0 <= self.dual_iterations <= self.iterations:
            raise W2GNUserError(f"dual_iterations must be in [0, iterations={self.iterations}], got {self.dual_iterations}")

    def n_dual(self) -> int:
        return self.iterations // 2 if self.dual_iterations is None else int(self.dual_iterations)


class LSOTSolver(Solver):
    """Seguy et al.'s regularised dual + barycentric projection (LSOT) behind the common interface.

    ``iterations`` counts both phases: ``dual_iterations`` dual steps, then barycentric steps.

    >>> from w2gn import GaussianPair
    >>> from w2gn.solvers import LSOTSolver
    >>> pair = GaussianPair.random(2, seed=0)
    >>> solver = LSOTSolver(iterations=100, pretrain_iterations=50, progress=False)
    >>> fitted = solver.fit(pair.source, pair.target)
    >>> fitted.forward_potential is None  # the barycentric projection is a map network, not a gradient
    True
    """

    name = "lsot"
    config_class = LSOTConfig
    config: LSOTConfig

    def setup(self, p: Sampler, q: Sampler, generator: torch.Generator) -> None:
        c = self.config
        self.theta = pretrained_potential(self, p, q, generator)
        self.omega = copy.deepcopy(self.theta)
        d = int(p.event_shape[0])
        hidden = c.map_hidden or c.hidden or default_hidden(d)
        self.fmap = DenseMap(d, hidden, c.map_activation, seed=c.seed + 1).to(device=p.device, dtype=p.dtype)
        self.gmap = DenseMap(d, hidden, c.map_activation, seed=c.seed + 2).to(device=p.device, dtype=p.dtype)
        self.opt_theta = adam(self.theta, c)
        self.opt_omega = adam(self.omega, c)
        self.opt_f = adam(self.fmap, c, c.map_lr)
        self.opt_g = adam(self.gmap, c, c.map_lr)

    def modules(self) -> dict[str, torch.nn.Module]:
        mods = {"theta": self.theta, "omega": self.omega, "fmap": self.fmap}
        if self.config.fit_inverse:
            mods["gmap"] = self.gmap
        return mods

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"theta": self.opt_theta, "omega": self.opt_omega, "fmap": self.opt_f}
        if self.config.fit_inverse:
            opts["gmap"] = self.opt_g
        return opts

    def current_map(self) -> TransportMap:
        nets = self.final_modules()
        return TransportMap(None, None, method=self.name, forward_network=nets["fmap"], inverse_network=nets.get("gmap"))

    def potentials(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``u(x), v(y)`` from the networks (parametrisation of the module doc)."""
        s = _COST_SCALE[self.config.cost]
        u = s * (0.5 * x.square().sum(1) - self.theta(x))
        v = s * (0.5 * y.square().sum(1) - self.omega(y))
        return u, v

    def step(self, iteration: int, p: Sampler, q: Sampler, generator: torch.Generator) -> dict[str, torch.Tensor]:
        c = self.config
        x = p.sample(c.batch_size, generator)
        y = q.sample(c.batch_size, generator)
        if iteration < c.n_dual():
            u, v = self.potentials(x, y)
            loss = -lsot_dual_objective(u, v, x, y, c.epsilon, c.regularizer, c.cost)
            self.opt_theta.zero_grad(set_to_none=True)
            self.opt_omega.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_theta.step()
            self.opt_omega.step()
            if c.convexify:
                self.theta.project()
                self.omega.project()
            with torch.no_grad():
                mass = lsot_plan_density(u.detach(), v.detach(), x, y, c.epsilon, c.regularizer, c.cost).mean()
            return {"loss": loss.detach(), "plan_mass": mass}
        with torch.no_grad():
            u, v = self.potentials(x, y)
            h = lsot_plan_density(u, v, x, y, c.epsilon, c.regularizer, c.cost)
        loss = barycentric_loss(self.fmap(x), y, h)
        if c.fit_inverse:
            loss = loss + barycentric_loss(self.gmap(y), x, h.T)
        self.opt_f.zero_grad(set_to_none=True)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_f.step()
        if c.fit_inverse:
            self.opt_g.step()
        return {"loss": loss.detach(), "plan_mass": h.mean()}
