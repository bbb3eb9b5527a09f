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
#: largest dimension in which a stalled L-BFGS solve is finished with Newton steps (D Hessian rows each)
_NEWTON_MAX_DIM = 64


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
        obj = potential(x).sum() - (x * y).flatten(1).sum()
        # gradient w.r.t. x only: the potential's parameter gradients (a training step's) stay untouched
        (gx,) = torch.autograd.grad(obj, x)
        x.grad = gx
        return obj.detach()

    iterations = 0
    residual = float("inf")
    stalled = False
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
            previous, residual = residual, float((g - y).flatten(1).norm(dim=1).max()) if y.shape[0] else 0.0
            if residual <= tol or not torch.isfinite(torch.tensor(residual)):
                break
            if optimizer == "lbfgs" and residual >= previous:
                # the joint line search stalls once the summed objective's decrease is below its rounding
                # (steep rows): finish row by row with Newton where the Hessians are affordable
                stalled = True
                break
    xd = x.detach()
    if stalled and y.dim() == 2 and y.shape[1] <= _NEWTON_MAX_DIM:
        polished = solve_conjugate_newton(potential, y, x0=xd, max_iter=20, tol=tol)
        if polished.residual < residual:
            return ConjugateResult(polished.x, polished.values, polished.residual, iterations + polished.iterations,
                                   polished.residual <= tol)
    with torch.no_grad():
        values = (xd * y).flatten(1).sum(dim=1) - potential(xd)
    return ConjugateResult(xd, values, residual, iterations, residual <= tol)


def hessian_rows(potential: ConvexPotential, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(grad psi(x), Hess psi(x))`` per row of a batch ``x`` of shape ``(N, D)``: ``(N, D)``, ``(N, D, D)``.

    One double-backward pass per coordinate (``D`` in all), no graph kept.
    """
    xr = x.detach().requires_grad_(True)
    with torch.enable_grad():
        g = potential.gradient(xr, create_graph=True)
        rows = [torch.autograd.grad(g[:, i].sum(), xr, retain_graph=i < g.shape[1] - 1)[0] for i in range(g.shape[1])]
    h = torch.stack(rows, dim=1)
    return g.detach(), 0.5 * (h + h.mT)


def solve_conjugate_newton(
    potential: ConvexPotential,
    y: torch.Tensor,
    x0: torch.Tensor | None = None,
    max_iter: int = 50,
    tol: float = 1e-9,
    ridge: float = 1e-10,
) -> ConjugateResult:
    """Solve ``max_x <x, y> - psi(x)`` row by row with damped Newton steps (vectors ``(N, D)`` only).

    Each row takes ``x <- x - t H^{-1} (grad psi(x) - y)`` with its own backtracking step ``t``
    (Armijo on ``psi(x) - <x, y>``), so rows never wait for each other as in a joint L-BFGS run;
    convergence is quadratic near the solution. Costs ``D`` backward passes per step (Hessian rows),
    so it suits ground-truth computations and polishing an L-BFGS or amortised start, in moderate
    ``D``. ``ridge`` (relative to the Hessian's scale) keeps flat directions solvable.
    """
    y = y.detach()
    x = (y.clone() if x0 is None else x0.detach().clone())
    n = y.shape[0]

    def objective(t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return potential(t) - (t * y).sum(dim=1)

    residual = float("inf")
    it = 0
    eye = torch.eye(y.shape[1], dtype=y.dtype, device=y.device)
    while it < max_iter:
        g, h = hessian_rows(potential, x)
        r = g - y
        res_rows = r.norm(dim=1)
        residual = float(res_rows.max()) if n else 0.0
        if residual <= tol or not torch.isfinite(torch.tensor(residual)):
            break
        scale = h.diagonal(dim1=1, dim2=2).abs().mean(dim=1).clamp_min(1e-12)
        step = torch.linalg.solve(h + (ridge * scale)[:, None, None] * eye, r.unsqueeze(-1)).squeeze(-1)
        f0 = objective(x)
        slope = -(r * step).sum(dim=1)  # directional derivative along -step (<= 0 for convex psi)
        t = torch.ones(n, dtype=y.dtype, device=y.device)
        active = res_rows > tol
        for _ in range(30):
            cand = x - t[:, None] * step
            # the slack absorbs rounding of f near the optimum, where the decrease is below eps * |f|
            ok = objective(cand) <= f0 + 1e-4 * t * slope + 1e-12 * f0.abs().clamp_min(1.0)
            ok = ok | ~active
            if bool(ok.all()):
                break
            t = torch.where(ok, t, 0.5 * t)
        x = torch.where(active[:, None], x - t[:, None] * step, x)
        it += 1
    if it == max_iter:
        g = potential.gradient(x, create_graph=False)
        residual = float((g - y).norm(dim=1).max()) if n else 0.0
    with torch.no_grad():
        values = (x * y).sum(dim=1) - potential(x)
    return ConjugateResult(x, values, residual, it, residual <= tol)
