"""MM-1: the minimax method of Taghvaei & Jalali (2019) with one input-convex potential.

"2-Wasserstein approximation via restricted convex potentials": minimise over a convex ``psi``

    J(psi) = E_P psi(x) + E_Q psi^*(y),   psi^*(y) = max_x <x, y> - psi(x),

whose minimiser's gradient is the OT map ``P -> Q`` (``W2^2 = E||x||^2 + E||y||^2 - 2 min J``).
The conjugate is evaluated by an inner convex optimisation for every target sample,
``x_hat(y) = argmax_x <x, y> - psi(x)`` (:func:`w2gn.conjugate.solve_conjugate`); by the envelope
theorem ``d psi^*(y) / d params = -d psi(x_hat) / d params`` with ``x_hat`` held fixed, so each step
descends on ``mean psi(X) - mean psi(x_hat)``. No second network: the fitted map's inverse is the
same inner solve at inference (:meth:`TransportMap.inverse`).
"""

from __future__ import annotations

import dataclasses

import torch

from ..conjugate import solve_conjugate
from ..distributions import Sampler
from ..errors import W2GNUserError
from ..fitted_map import TransportMap
from .base import Solver
from .icnn_config import PotentialConfig, adam, pretrained_potential


@dataclasses.dataclass
class MM1Config(PotentialConfig):
    """Hyper-parameters of :class:`MM1Solver`.

    Inner problem: ``inner_optimizer`` (``"lbfgs"``, ``"adam"`` or ``"gd"``), ``inner_iterations``
    (at most), ``inner_tol`` (stop once ``max_i ||grad psi(x_hat_i) - y_i|| <= inner_tol``),
    ``inner_lr`` (``None`` = the optimiser's default in :func:`~w2gn.conjugate.solve_conjugate`),
    ``inner_check_every`` (residual check period). ``inverse_max_iter``/``inverse_tol``: the same
    solve for the fitted map's inverse at inference.
    """

    inner_optimizer: str = "lbfgs"
    inner_iterations: int = 50
    inner_tol: float = 1e-3
    inner_lr: float | None = None
    inner_check_every: int = 10
    inverse_max_iter: int = 200
    inverse_tol: float = 1e-5

    def validate(self) -> None:
        super().validate()
        if self.inner_optimizer not in ("lbfgs", "adam", "gd"):
            raise W2GNUserError(f"inner_optimizer must be lbfgs, adam or gd, got {self.inner_optimizer!r}")
        if self.inner_iterations <= 0 or self.inner_check_every <= 0 or self.inverse_max_iter <= 0:
            raise W2GNUserError("inner_iterations, inner_check_every and inverse_max_iter must be positive")
        if not (self.inner_tol > 0 and self.inverse_tol > 0):
            raise W2GNUserError("inner_tol and inverse_tol must be positive")


class MM1Solver(Solver):
    """Taghvaei & Jalali's single-potential minimax (MM-1) behind the common solver interface.

    >>> from w2gn import GaussianPair
    >>> from w2gn.solvers import MM1Solver
    >>> pair = GaussianPair.random(2, seed=0)
    >>> solver = MM1Solver(iterations=50, pretrain_iterations=50, progress=False)
    >>> fitted = solver.fit(pair.source, pair.target)
    >>> x = fitted.inverse(fitted.forward(pair.source.sample(4)))  # the inverse: an inner solve per row
    """

    name = "mm1"
    config_class = MM1Config
    config: MM1Config

    def setup(self, p: Sampler, q: Sampler, generator: torch.Generator, potential=None) -> None:
        self.theta = pretrained_potential(self, p, q, generator, potential)
        self.opt_theta = adam(self.theta, self.config)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"theta": self.theta}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"theta": self.opt_theta}

    def current_map(self) -> TransportMap:
        fitted = TransportMap(self.final_modules()["theta"], None, method=self.name)
        fitted.conjugate_options = {"max_iter": self.config.inverse_max_iter, "tol": self.config.inverse_tol}
        return fitted

    def inner_solve(self, y: torch.Tensor):
        """``x_hat(y) = argmax_x <x, y> - psi(x)`` with the configured inner optimiser (warm start ``x0 = y``)."""
        c = self.config
        return solve_conjugate(self.theta, y, max_iter=c.inner_iterations, tol=c.inner_tol, lr=c.inner_lr,
                               optimizer=c.inner_optimizer, check_every=c.inner_check_every)

    def loss(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """``mean psi(x) - mean psi(x_hat)``: the gradient of ``J`` w.r.t. the weights (envelope theorem)."""
        return self.theta(x).mean() - self.theta(x_hat.detach()).mean()

    def step(self, iteration: int, p: Sampler, q: Sampler, generator: torch.Generator) -> dict[str, torch.Tensor]:
        c = self.config
        x = p.sample(c.batch_size, generator)
        y = q.sample(c.batch_size, generator)
        res = self.inner_solve(y)
        loss = self.loss(x, res.x)
        self.opt_theta.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_theta.step()
        self.theta.project()
        with torch.no_grad():
            # J = E psi(x) + E psi^*(y) on this batch, then W2^2 = E||x||^2 + E||y||^2 - 2 J (eq. 5)
            j = self.theta(x).mean() + res.values.mean()
            w2 = x.square().sum(1).mean() + y.square().sum(1).mean() - 2 * j
        t = torch.tensor
        return {"loss": loss.detach(), "w2_dual": w2,
                "inner_iterations": t(float(res.iterations)), "inner_residual": t(res.residual)}
