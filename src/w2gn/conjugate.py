"""Numerical convex conjugate: ``x_hat(y) = argmax_x <x, y> - psi(x)``, i.e. ``(grad psi)^{-1}(y)``.

Used where no second network approximates the inverse map (MM-1's inner problem during training and
its inverse at inference) and to refine an approximate inverse. The problem is separable over the batch, so one L-BFGS run on
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


_DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.05, "gd": 0.5}


def solve_conjugate(
    potential: ConvexPotential,
    y: torch.Tensor,
    x0: torch.Tensor | None = None,
    max_iter: int = 200,
    tol: float = 1e-5,
    lr: float | None = None,
    optimizer: str = "lbfgs",
    check_every: int = 20,
) -> ConjugateResult:
    """Solve ``max_x <x, y> - psi(x)`` for every row of ``y``.

    The objective ``sum_i psi(x_i) - <x_i, y_i>`` is minimised over all rows at once with
    ``optimizer``: ``"lbfgs"`` (default; strong Wolfe line search, ``lr`` 1), ``"adam"`` (``lr``
    0.05) or ``"gd"`` (plain gradient descent, ``lr`` 0.5; converges for ``lr < 2 / L`` where ``L``
    bounds the Hessian of ``psi``). Because the rows are independent, each row follows its own
    gradient ``grad psi(x_i) - y_i``.

    ``x0`` defaults to ``y`` (exact for the identity map). Every ``check_every`` iterations the
    residual ``max_i ||grad psi(x_i) - y_i||`` is computed; the solve stops once it is at most
    ``tol`` or after ``max_iter`` iterations. No graph is kept: the result is for inference or as a
    stop-gradient target (MM-1's inner problem).
    """
    if optimizer not in _DEFAULT_LR:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(_DEFAULT_LR)}")
    if max_iter <= 0 or check_every <= 0:
        raise ValueError(f"max_iter and check_every must be positive, got {max_iter}, {check_every}")
    step_lr = _DEFAULT_LR[optimizer] if lr is None else float(lr)
    y = y.detach()
    x = (y.clone() if x0 is None else x0.detach().clone()).requires_grad_(True)
    chunk = min(check_every, max_iter)
    if optimizer == "lbfgs":
        opt: torch.optim.Optimizer = torch.optim.LBFGS(
            [x], lr=step_lr, max_iter=chunk, tolerance_grad=tol * 1e-2, tolerance_change=0.0,
            history_size=20, line_search_fn="strong_wolfe")
    elif optimizer == "adam":
        opt = torch.optim.Adam([x], lr=step_lr)
    else:
        opt = torch.optim.SGD([x], lr=step_lr)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        obj = potential(x).sum() - (x * y).flatten(1).sum()
        obj.backward()
        return obj

    iterations = 0
    residual = float("inf")
    with torch.enable_grad():
        while iterations < max_iter:
            n = min(chunk, max_iter - iterations)
            if optimizer == "lbfgs":
                opt.step(closure)  # runs up to ``chunk`` inner iterations
            else:
                for _ in range(n):
                    opt.step(closure)
            iterations += n
            g = potential.gradient(x.detach(), create_graph=False)
            residual = float((g - y).flatten(1).norm(dim=1).max()) if y.shape[0] else 0.0
            if residual <= tol or not torch.isfinite(torch.tensor(residual)):
                break
    xd = x.detach()
    with torch.no_grad():
        values = (xd * y).flatten(1).sum(dim=1) - potential(xd)
    return ConjugateResult(xd, values, residual, iterations, residual <= tol)
