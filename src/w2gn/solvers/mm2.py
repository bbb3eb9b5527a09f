"""MM-2: the minimax method of Makkuva, Taghvaei, Oh & Lee (2019) with two input-convex networks.

"Optimal transport mapping via input convex neural networks" (ICML 2020): in this library's
notation (``psi_theta`` = their ``f``, ``psi_omega`` = their ``g``),

    min_theta max_omega  L(theta, omega) = E_P psi_theta(x) + E_Q [<grad psi_omega(y), y> - psi_theta(grad psi_omega(y))]

(the same functional as W2GN's eq. 12, but solved as a saddle point instead of with a cycle
regulariser). For fixed ``theta`` the inner maximum is reached at ``grad psi_omega = (grad psi_theta)^{-1}``,
so ``L`` becomes ``E_P psi + E_Q psi^*``. Each outer step runs ``inner_steps`` (K) Adam ascent steps on
``omega`` with fresh target batches, then one descent step on ``theta``.

Convexity as in that paper: ``theta``'s constrained weights are clipped to be non-negative after
every step; ``omega``'s are kept near the convex set by the penalty
``omega_penalty * sum ||max(-W, 0)||_F^2`` added to the inner loss (``omega_convexity="penalty"``,
the default) or clipped as well (``"clip"``).
"""

from __future__ import annotations

import copy
import dataclasses

import torch

from ..distributions import Sampler
from ..errors import W2GNUserError
from ..fitted_map import TransportMap
from ..networks import ConvexPotential
from .base import Solver
from .icnn_config import PotentialConfig, adam, pretrained_potential


def negative_weight_penalty(potential: ConvexPotential) -> torch.Tensor:
    """``sum_W ||max(-W, 0)||_F^2`` over the weights that must be non-negative (Makkuva et al.'s ``R``)."""
    terms = [torch.relu(-w).square().sum() for w in potential.constrained_parameters()]
    if not terms:
        return torch.zeros((), device=next(potential.parameters()).device)
    return torch.stack(terms).sum()


@dataclasses.dataclass
class MM2Config(PotentialConfig):
    """Hyper-parameters of :class:`MM2Solver`.

    ``inner_steps``: K ascent steps on ``omega`` per step on ``theta`` (each with a new target
    batch); ``omega_convexity``: ``"penalty"`` (default) or ``"clip"``; ``omega_penalty``: weight of
    the negative-weight penalty; ``inner_lr``: ``omega``'s learning rate (``None`` = ``lr``).
    ``iterations`` counts outer steps.
    """

    inner_steps: int = 10
    omega_convexity: str = "penalty"
    omega_penalty: float = 1.0
    inner_lr: float | None = None

    def validate(self) -> None:
        super().validate()
        if self.inner_steps <= 0:
            raise W2GNUserError(f"inner_steps must be positive, got {self.inner_steps}")
        if self.omega_convexity not in ("penalty", "clip"):
            raise W2GNUserError(f"omega_convexity must be 'penalty' or 'clip', got {self.omega_convexity!r}")
        if self.omega_penalty < 0:
            raise W2GNUserError(f"omega_penalty must be >= 0, got {self.omega_penalty}")


class MM2Solver(Solver):
    """Makkuva et al.'s two-network minimax (MM-2) behind the common solver interface.

    >>> from w2gn import GaussianPair
    >>> from w2gn.solvers import MM2Solver
    >>> pair = GaussianPair.random(2, seed=0)
    >>> fitted = MM2Solver(iterations=50, pretrain_iterations=50, progress=False).fit(pair.source, pair.target)
    """

    name = "mm2"
    config_class = MM2Config
    config: MM2Config

    def setup(self, p: Sampler, q: Sampler, generator: torch.Generator, potential=None) -> None:
        c = self.config
        self.theta = pretrained_potential(self, p, q, generator, potential)
        self.omega = copy.deepcopy(self.theta)
        self.opt_theta = adam(self.theta, c)
        self.opt_omega = adam(self.omega, c, c.inner_lr)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"theta": self.theta, "omega": self.omega}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"theta": self.opt_theta, "omega": self.opt_omega}

    def current_map(self) -> TransportMap:
        nets = self.final_modules()
        return TransportMap(nets["theta"], nets["omega"], method=self.name)

    def inner_loss(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss minimised over ``omega``: ``-E_Q[<grad psi_omega(y), y> - psi_theta(grad psi_omega(y))] + penalty``.

        Returns ``(loss, grad psi_omega(y))``.
        """
        c = self.config
        y_inv = self.omega.gradient(y, create_graph=True)
        loss = -((y_inv * y).sum(1).mean() - self.theta(y_inv).mean())
        if c.omega_convexity == "penalty" and c.omega_penalty:
            loss = loss + c.omega_penalty * negative_weight_penalty(self.omega)
        return loss, y_inv

    def outer_loss(self, x: torch.Tensor, y_inv: torch.Tensor) -> torch.Tensor:
        """Loss minimised over ``theta``: ``E_P psi_theta(x) - E_Q psi_theta(grad psi_omega(y))`` (omega fixed)."""
        return self.theta(x).mean() - self.theta(y_inv.detach()).mean()

    def step(self, iteration: int, p: Sampler, q: Sampler, generator: torch.Generator) -> dict[str, torch.Tensor]:
        c = self.config
        x = p.sample(c.batch_size, generator)
        # theta is fixed during the inner maximisation: no gradients for it
        self.theta.requires_grad_(False)
        try:
            for _ in range(c.inner_steps):
                y = q.sample(c.batch_size, generator)
                inner, y_inv = self.inner_loss(y)
                self.opt_omega.zero_grad(set_to_none=True)
                inner.backward()
                self.opt_omega.step()
                if c.omega_convexity == "clip":
                    self.omega.project()
        finally:
            self.theta.requires_grad_(True)
        y_inv = self.omega.gradient(y, create_graph=False)
        loss = self.outer_loss(x, y_inv)
        self.opt_theta.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_theta.step()
        self.theta.project()
        with torch.no_grad():
            corr = self.theta(x).mean() + (y_inv * y).sum(1).mean() - self.theta(y_inv).mean()
            w2 = x.square().sum(1).mean() + y.square().sum(1).mean() - 2 * corr
        return {"loss": loss.detach(), "inner_loss": inner.detach(), "w2_dual": w2,
                "omega_negativity": negative_weight_penalty(self.omega).detach()}
