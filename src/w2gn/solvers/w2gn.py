"""The W2GN solver: Algorithm 1 of the paper with the training details of Appendix C.1.

Objective (eq. 12), minimised jointly over both potentials with separate Adam optimisers:

    L = E_P psi_theta(x) + E_Q [<grad psi_omega(y), y> - psi_theta(grad psi_omega(y))]
        + lambda * R_Y(theta, omega) [+ lambda * R_X(theta, omega)] [+ l1 * (|theta|_1 + |omega|_1)]

with R_Y = E_Q ||grad psi_theta(grad psi_omega(y)) - y||^2 (eq. 11) and R_X its mirror (eq. 51).
The stop-gradient heuristic of C.1 (default on) detaches ``grad psi_omega(y)`` inside the
correlation term, so omega is trained by the cycle terms only; the ``<., y>`` term then carries no
gradient and is kept only for monitoring.

Cycle normalisation (which ``lambda`` refers to):

* ``"coordinate"`` (default, as the reference code): ``R`` is the mean over the batch *and the
  coordinates* of the squared error, and the loss adds ``lambda * R``;
* ``"sample"`` (Algorithm 1 as printed): ``R`` is the batch mean of the squared norm, and the loss
  adds ``lambda / 2 * R``.

So ``lambda_coordinate = lambda_sample * D / 2`` gives the same objective.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any

import torch
from tqdm.auto import tqdm

from ..errors import DivergenceError, W2GNUserError
from ..fitted_map import TransportMap
from ..networks import ConvexPotential, ConvICNN, DenseICNN
from .base import (
    Callback,
    Solver,
    SolverConfig,
    check_finite,
    grads_finite,
    prepare_samplers,
    resolve_device,
    resolve_dtype,
)
from .pretrain import pretrain_identity


def default_hidden(dim: int) -> list[int]:
    """Default Dense ICNN widths ``[h0, h1, h2]`` for dimension ``D``: at least 64 units, about ``2D``."""
    h = max(64, 2 * dim)
    return [h, h, max(32, h // 2)]


@dataclasses.dataclass
class W2GNConfig(SolverConfig):
    """Hyper-parameters of :class:`W2GNSolver` (defaults: Appendix C.1/C.4 where they apply).

    Network: ``hidden`` (Dense ICNN widths ``[h0; h1, ...]``, ``None`` = :func:`default_hidden`),
    ``rank``, ``activation``, ``strong_convexity``, ``dropout``; image inputs get a
    :class:`~w2gn.networks.ConvICNN` instead.

    Objective: ``lambda_cycle`` (``None`` = ``min(D, 50)`` as in C.4), ``cycle_normalization``
    (``"coordinate"``/``"sample"``, see module doc), ``cycle_y`` (R_Y, eq. 11), ``cycle_x`` (R_X,
    eq. 51, used by the paper in high dimensions), ``correlation_on`` (``"theta"``: the correlation
    term of eq. 12 on psi_theta, the paper's choice; ``"omega"``: the mirrored objective with the
    roles of P and Q swapped), ``stop_gradient`` (heuristic of C.1), ``l1_penalty``.

    Optimisation: ``betas`` of both Adams; ``pretrain_iterations``/``pretrain_lr``/``pretrain_tol``
    of the identity pretraining (0 iterations = none).
    """

    hidden: list[int] | None = None
    rank: int = 1
    activation: str = "celu"
    strong_convexity: float = 1e-6
    dropout: float = 0.0
    lambda_cycle: float | None = None
    cycle_normalization: str = "coordinate"
    cycle_y: bool = True
    cycle_x: bool = False
    correlation_on: str = "theta"
    stop_gradient: bool = True
    l1_penalty: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    pretrain_iterations: int = 1000
    pretrain_lr: float = 1e-3
    pretrain_tol: float = 1e-4

    def validate(self) -> None:
        super().validate()
        if self.cycle_normalization not in ("coordinate", "sample"):
            raise W2GNUserError(f"cycle_normalization must be 'coordinate' or 'sample', got {self.cycle_normalization!r}")
        if self.correlation_on not in ("theta", "omega"):
            raise W2GNUserError(f"correlation_on must be 'theta' or 'omega', got {self.correlation_on!r}")
        if self.lambda_cycle is not None and self.lambda_cycle < 0:
            raise W2GNUserError(f"lambda_cycle must be >= 0, got {self.lambda_cycle}")
        if not (self.cycle_y or self.cycle_x):
            raise W2GNUserError("at least one of cycle_y / cycle_x must be on: W2GN needs a cycle regulariser")
        if self.l1_penalty < 0 or self.pretrain_iterations < 0:
            raise W2GNUserError("l1_penalty and pretrain_iterations must be >= 0")

    def effective_lambda(self, dim: int) -> float:
        return float(min(dim, 50)) if self.lambda_cycle is None else float(self.lambda_cycle)


class W2GNSolver(Solver):
    """Wasserstein-2 Generative Network solver (non-minimax, cycle-regularised).

    >>> from w2gn import W2GNSolver, GaussianPair
    >>> pair = GaussianPair.random(2, seed=0)
    >>> fitted = W2GNSolver(iterations=200, progress=False).fit(pair.source, pair.target)
    """

    name = "w2gn"
    config_class = W2GNConfig
    config: W2GNConfig

    def build_potential(self, event_shape: tuple[int, ...], seed: int) -> ConvexPotential:
        """The default potential for samples of ``event_shape``: Dense ICNN for vectors, Conv ICNN for images."""
        c = self.config
        if len(event_shape) == 1:
            d = event_shape[0]
            return DenseICNN(d, c.hidden or default_hidden(d), rank=c.rank, activation=c.activation,
                             strong_convexity=c.strong_convexity, dropout=c.dropout, seed=seed)
        if len(event_shape) == 3:
            return ConvICNN(channels=event_shape[0], strong_convexity=c.strong_convexity, seed=seed)
        raise W2GNUserError(f"no default potential for samples of shape {event_shape}; pass potential=...")

    def _cycle(self, mapped: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        sq = (mapped - target).flatten(1).square()
        if self.config.cycle_normalization == "coordinate":
            return sq.mean()
        return 0.5 * sq.sum(dim=1).mean()

    def fit(
        self,
        source,
        target,
        callback: Callback | None = None,
        potential: ConvexPotential | None = None,
    ) -> TransportMap:
        """Fit ``grad psi_theta: P -> Q`` and ``grad psi_omega: Q -> P``.

        ``source``/``target``: samplers, arrays/tensors ``(N, *shape)`` or callables ``fn(n)``.
        ``potential``: an untrained psi_theta to use instead of the default network (psi_omega is
        its copy after pretraining). Raises :class:`~w2gn.errors.DivergenceError` if the loss or a
        gradient becomes non-finite; :attr:`last_good_state` then holds the last finite weights.
        """
        c = self.config
        device, dtype = resolve_device(c.device), resolve_dtype(c.dtype)
        p, q = prepare_samplers(source, target, device, dtype)
        gen = torch.Generator(device=device).manual_seed(int(c.seed))
        theta = potential if potential is not None else self.build_potential(tuple(p.event_shape), c.seed)
        theta = theta.to(device=device, dtype=dtype)
        if c.pretrain_iterations:
            self.pretrain_loss = pretrain_identity(theta, [p, q], c.pretrain_iterations, c.batch_size,
                                                   c.pretrain_lr, c.pretrain_tol, gen)
        omega = copy.deepcopy(theta)
        return self.train(theta, omega, p, q, gen, callback)

    def train(self, theta, omega, p, q, gen, callback: Callback | None = None, start_iteration: int = 0) -> TransportMap:
        """The main loop of Algorithm 1 from given (pretrained) potentials and samplers."""
        c = self.config
        dim = p.dim
        lam = c.effective_lambda(dim)
        opt_t = torch.optim.Adam(theta.parameters(), lr=c.lr, betas=tuple(c.betas))
        opt_o = torch.optim.Adam(omega.parameters(), lr=c.lr, betas=tuple(c.betas))
        self.optimizers = (opt_t, opt_o)
        # forward network carries the correlation term; the other is its conjugate
        fwd, bwd, src, tgt = (theta, omega, p, q) if c.correlation_on == "theta" else (omega, theta, q, p)
        sync_every = 1 if theta_device(theta).type == "cpu" else c.log_every
        live = TransportMap(theta, omega, method=self.name)
        start = time.perf_counter()
        self.last_good_state = self._snapshot(theta, omega, start_iteration)
        bar = tqdm(total=c.iterations, initial=start_iteration, disable=not c.progress, desc="w2gn", leave=False)
        theta.train()
        omega.train()
        try:
            for it in range(start_iteration, c.iterations):
                x = src.sample(c.batch_size, gen)
                y = tgt.sample(c.batch_size, gen)
                y_inv = bwd.gradient(y, create_graph=True)
                y_inv_sg = y_inv.detach() if c.stop_gradient else y_inv
                psi_x = fwd(x).mean()
                psi_y_inv = fwd(y_inv_sg).mean()
                inner = (y_inv_sg * y).flatten(1).sum(1).mean()
                corr = psi_x - psi_y_inv + (0.0 if c.stop_gradient else inner)
                loss = corr
                cyc_y = cyc_x = torch.zeros((), device=y.device, dtype=y.dtype)
                if c.cycle_y:
                    cyc_y = self._cycle(fwd.gradient(y_inv, create_graph=True), y)
                    loss = loss + lam * cyc_y
                if c.cycle_x:
                    x_fwd = fwd.gradient(x, create_graph=True)
                    cyc_x = self._cycle(bwd.gradient(x_fwd, create_graph=True), x)
                    loss = loss + lam * cyc_x
                if c.l1_penalty:
                    loss = loss + c.l1_penalty * (theta.l1_norm() + omega.l1_norm())
                opt_t.zero_grad(set_to_none=True)
                opt_o.zero_grad(set_to_none=True)
                loss.backward()
                if (it + 1) % sync_every == 0:
                    check_finite(loss.detach(), it, "loss")
                    if not grads_finite(list(theta.parameters()) + list(omega.parameters())):
                        raise DivergenceError(it, "gradient", float("nan"), "a parameter gradient is NaN/inf")
                opt_t.step()
                opt_o.step()
                theta.project()
                omega.project()
                bar.update(1)
                if (it + 1) % c.log_every == 0 or it == c.iterations - 1:
                    with torch.no_grad():
                        corr_full = float(psi_x - psi_y_inv + inner.detach())
                        mx = float(x.flatten(1).square().sum(1).mean())
                        my = float(y.flatten(1).square().sum(1).mean())
                        stats = {
                            "loss": check_finite(loss.detach(), it, "loss"),
                            "correlation": corr_full,
                            "cycle_y": float(cyc_y),
                            "cycle_x": float(cyc_x),
                            "w2_dual": mx + my - 2 * corr_full,
                        }
                    self.last_good_state = self._snapshot(theta, omega, it + 1)
                    row = self._record(it + 1, start, stats)
                    bar.set_postfix(loss=f"{stats['loss']:.4g}", cycle=f"{stats['cycle_y'] + stats['cycle_x']:.3g}")
                    if callback is not None:
                        theta.eval()
                        omega.eval()
                        stop = callback(it + 1, live, row)
                        theta.train()
                        omega.train()
                        if stop:
                            break
        finally:
            bar.close()
            theta.eval()
            omega.eval()
        info: dict[str, Any] = {"config": _plain(c.to_dict()), "history": self.history,
                                "source": p.describe(), "target": q.describe()}
        return TransportMap(theta, omega, method=self.name, info=info)

    @staticmethod
    def _snapshot(theta, omega, iteration: int) -> dict[str, Any]:
        return {
            "iteration": iteration,
            "theta": {k: v.detach().clone() for k, v in theta.state_dict().items()},
            "omega": {k: v.detach().clone() for k, v in omega.state_dict().items()},
        }


def theta_device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
