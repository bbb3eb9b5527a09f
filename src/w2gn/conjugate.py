"""Numerical convex conjugate: ``x_hat(y) = argmax_x <x, y> - psi(x)``, i.e. ``(grad psi)^{-1}(y)``.

Used where no second network approximates the inverse map (MM-1, the inverse of a single potential)
and to refine an approximate inverse. The problem is separable over the batch, so one L-BFGS run on
``sum_i psi(x_i) - <x_i, y_i>`` solves all rows at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .networks.base import ConvexPotential


@dataclass(frozen=True)
class ConjugateResult:
    """Outcome of :func:`solve_conjugate`.

    ``x``: argmax rows, shape of ``y``; ``values``: ``psi*(y) = <x, y> - psi(x)`` per row;
    ``residual``: max over rows of ``||grad psi(x) - y||``; ``iterations``: L-BFGS iterations run;
    ``converged``: ``residual <= tol``.
    """

    x: torch.Tensor
    values: torch.Tensor
    residual: float
    iterations: int
    converged: bool


def solve_conjugate(
    potential: ConvexPotential,
    y: torch.Tensor,
    x0: torch.Tensor | None = None,
    max_iter: int = 200,
    tol: float = 1e-5,
    lr: float = 1.0,
) -> ConjugateResult:
    """Solve ``max_x <x, y> - psi(x)`` for every row of ``y`` with L-BFGS (strong Wolfe line search).

    ``x0`` defaults to ``y`` (exact for the identity map). Stops when the residual
    ``max_i ||grad psi(x_i) - y_i||`` is at most ``tol`` or after ``max_iter`` iterations. No graph is
    kept: the result is for inference or as a stop-gradient target.
    """
    y = y.detach()
    x = (y.clone() if x0 is None else x0.detach().clone()).requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=lr, max_iter=20, tolerance_grad=tol * 1e-2, tolerance_change=0.0,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        obj = potential(x).sum() - (x * y).flatten(1).sum()
        obj.backward()
        return obj

    iterations = 0
    residual = float("inf")
    with torch.enable_grad():
        while iterations < max_iter:
            opt.step(closure)
            iterations += 20
            g = potential.gradient(x.detach(), create_graph=False)
            residual = float((g - y).flatten(1).norm(dim=1).max()) if y.shape[0] else 0.0
            if residual <= tol or not torch.isfinite(torch.tensor(residual)):
                break
    xd = x.detach()
    with torch.no_grad():
        values = (xd * y).flatten(1).sum(dim=1) - potential(xd)
    return ConjugateResult(xd, values, residual, min(iterations, max_iter), residual <= tol)
