"""The W2GN training objective as a pure function: Algorithm 1 / eq. 12 of the paper, plus named extras.

Eq. 12, the regularised correlations minimised jointly over the potentials ``psi_theta`` and
``psi_omega``::

    Corr(P, Q | psi_theta, psi_omega; lambda)
        = E_P psi_theta(x) + E_Q [<grad psi_omega(y), y> - psi_theta(grad psi_omega(y))]   (correlations, eq. 10)
          + lambda * R_Y(theta, omega)                                                        (cycle, eq. 11)

with ``R_Y = E_Q ||grad psi_theta(grad psi_omega(y)) - y||^2``. Optional terms, each a named piece
added to the loss in this order: ``R_X`` (eq. 51, the mirrored cycle term on ``P``), the
amortisation term of in-training conjugate refinement, the expectile regulariser and the L1 penalty.

Nothing here reads a configuration or touches an optimiser: :class:`W2GNTerms` says which terms
are on, and the caller passes how input-gradients are taken (``gradient``) and how the conjugate's
argmax is refined (``refine``). See :mod:`w2gn.solvers.w2gn` for the meaning of each option.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from ..networks import ConvexPotential

#: ``gradient(psi, x)``: ``grad psi(x)``, differentiable w.r.t. psi's parameters
Gradient = Callable[[ConvexPotential, torch.Tensor], torch.Tensor]
#: ``refine(psi, y, x0)``: a better ``argmax_x <x, y> - psi(x)`` started at ``x0`` (no graph)
Refine = Callable[[ConvexPotential, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class W2GNTerms:
    """Which terms of the W2GN objective are on, and their weights.

    ``lam``: lambda of eq. 12; ``normalization``: ``"coordinate"`` (mean squared error over batch and
    coordinates) or ``"sample"`` (half the batch mean of the squared norm, Algorithm 1's
    ``lambda / 2 * L_cycle``); ``stop_gradient``: detach ``grad psi_omega(y)`` in the correlations
    (Appendix C.1); ``cycle_y``/``cycle_x``: R_Y (eq. 11) / R_X (eq. 51); ``refine``: in-training
    conjugate refinement (its amortisation term); ``l1``: the L1 penalty on both networks' weights;
    ``expectile_weight``/``expectile``: the expectile regulariser; ``ascent_weight``: objective amortisation
    of ``grad psi_omega`` (see :func:`w2gn_objective`).
    """

    # eq. 12 as trained: stated every time
    lam: float
    normalization: str
    stop_gradient: bool
    cycle_y: bool
    # the optional terms: off unless asked for
    cycle_x: bool = False
    refine: bool = False
    l1: float = 0.0
    expectile_weight: float = 0.0
    expectile: float = 0.99
    ascent_weight: float = 0.0


def cycle_error(mapped: torch.Tensor, target: torch.Tensor, normalization: str = "coordinate") -> torch.Tensor:
    """Monte-Carlo estimate of a cycle term ``E ||mapped - target||^2`` (eq. 11 / 51) on a batch.

    ``"coordinate"``: mean over batch and coordinates; ``"sample"``: ``1/2`` of the batch mean of the
    squared norm (Algorithm 1, step 3 with step 4's ``1/2``). ``mapped``, ``target``: ``(B, ...)``.
    """
    sq = (mapped - target).flatten(1).square()
    if normalization == "coordinate":
        return sq.mean()
    return 0.5 * sq.sum(dim=1).mean()


def _over_constant_map(error: torch.Tensor, target: torch.Tensor, normalization: str) -> torch.Tensor:
    """A cycle error over that of the constant map at the batch mean of ``target`` (a batch of one repeated
    point gives 0 / tiny, not a NaN statistic)."""
    const = cycle_error(target.mean(0, keepdim=True).expand_as(target), target, normalization)
    return error / const.clamp_min(torch.finfo(target.dtype).tiny)


def batch_inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample ``<a_i, b_i>`` of two batches ``(B, ...)`` -> ``(B,)``."""
    return (a * b).flatten(1).sum(1)


def expectile_loss(u: torch.Tensor, tau: float) -> torch.Tensor:
    """The asymmetric square ``mean |tau - 1[u < 0]| u^2`` (Buzun et al. 2024) of residuals ``u``."""
    w = torch.where(u > 0, tau, 1.0 - tau)
    return (w * u.square()).mean()


def w2gn_objective(theta: ConvexPotential, omega: ConvexPotential, x: torch.Tensor, y: torch.Tensor,
                   terms: W2GNTerms, gradient: Gradient, refine: Refine | None = None,
                   fused: bool = False, theta_at_x: torch.Tensor | None = None,
                   omega_at_y: tuple[torch.Tensor, torch.Tensor] | None = None
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of eq. 12 (plus the optional terms) on batches ``x ~ P``, ``y ~ Q`` of shape ``(B, ...)``.

    ``theta`` carries the correlations; to train the mirrored objective pass the networks and the
    batches swapped. ``fused``: take ``psi_theta`` and ``grad psi_theta`` at ``grad psi_omega(y)``
    from one analytic sweep (``value_and_gradient_analytic``; same values and gradients as the
    plain evaluation under the stop-gradient heuristic, with one pass fewer). ``theta_at_x`` (``psi_theta(x)``,
    shape ``(B,)``) and ``omega_at_y`` (``(psi_omega(y), grad psi_omega(y))``): sweeps already taken, differentiable
    w.r.t. the parameters; the two-sided objective's halves share them (each half's argmax sweep is the
    other's value at its own batch).

    Returns the loss to minimise and its parts (detached, for monitoring): ``correlation`` (the
    full Monte-Carlo correlation of step 2, the gradient-free ``<., y>`` included), ``cycle_y``,
    ``cycle_x`` and each over the error of the constant map at its batch's mean (``cycle_y_rel``,
    ``cycle_x_rel``: near 0 in a healthy run, about 1 or more once the maps have collapsed),
    ``w2_dual = E||x||^2 + E||y||^2 - 2 * correlation`` (eq. 5 without the regulariser)
    and, when on, ``amortization`` and ``expectile``.
    """
    t = terms
    # Algorithm 1, step 2: x_hat = grad psi_omega(y), the amortised argmax of the conjugate (eq. 10)
    omega_y = None
    if omega_at_y is not None:
        omega_y, y_inv = omega_at_y
    elif fused and t.expectile_weight and hasattr(omega, "value_and_gradient_analytic"):
        # the expectile term needs psi_omega(y) too: one sweep gives value and gradient (a forward pass fewer)
        omega_y, y_inv = omega.value_and_gradient_analytic(y)
    else:
        y_inv = gradient(omega, y)
    # Appendix C.1: with the stop-gradient heuristic omega learns from the cycle terms only
    y_inv_sg = y_inv.detach() if t.stop_gradient else y_inv
    if refine is not None and t.refine:
        y_inv_sg = refine(theta, y, y_inv.detach())  # a better argmax, entering as a constant
    # step 2: correlations E_P psi_theta(x) + E_Q [<x_hat, y> - psi_theta(x_hat)]   (eq. 12, first line)
    theta_grad_at_x = None
    if theta_at_x is None and fused and t.cycle_x:
        # R_X needs grad psi_theta(x): one sweep gives it with the value the correlations need
        theta_at_x, theta_grad_at_x = theta.value_and_gradient_analytic(x)
    psi_x = (theta_at_x if theta_at_x is not None else theta(x)).mean()
    theta_grad_at_y_inv = theta_at_y_inv = None
    if fused:
        # psi_theta and its gradient at x_hat from one sweep; subtracting <sg(g), x_hat - sg(x_hat)>
        # removes the value's path into omega, so both networks get the stop-gradient objective's gradients
        val, theta_grad_at_y_inv = theta.value_and_gradient_analytic(y_inv)
        theta_at_y_inv = val.detach()  # psi_theta(x_hat), x_hat = sg(x_hat) here (fused: no refinement)
        psi_y_inv = val.mean() - batch_inner(theta_grad_at_y_inv.detach(), y_inv - y_inv_sg).mean()
    else:
        psi_y_inv = theta(y_inv_sg).mean()
    inner = batch_inner(y_inv_sg, y).mean()  # <x_hat, y>: no gradient under stop-gradient, kept for monitoring
    loss = psi_x - psi_y_inv + (0.0 if t.stop_gradient else inner)
    zero = torch.zeros((), device=y.device, dtype=y.dtype)
    cyc_y = cyc_x = amort = expec = zero
    # steps 3-4: + lambda * R_Y, R_Y = E_Q ||grad psi_theta(grad psi_omega(y)) - y||^2   (eq. 11)
    mapped_back = None
    if t.cycle_y or t.ascent_weight:
        mapped_back = theta_grad_at_y_inv if theta_grad_at_y_inv is not None else gradient(theta, y_inv)
    if t.cycle_y:
        cyc_y = cycle_error(mapped_back, y, t.normalization)
        loss = loss + t.lam * cyc_y
    if t.ascent_weight:
        # objective amortisation (Makkuva et al. 2020; Amos, ICLR 2023): x_hat = grad psi_omega(y) climbs the
        # conjugate's objective <x, y> - psi_theta(x), whose gradient in x is y - grad psi_theta(x), with
        # psi_theta held fixed. The surrogate <sg(grad psi_theta(x_hat) - y), x_hat> has exactly that
        # gradient (per coordinate, as R_Y's); R_Y's own gradient in x_hat is the same residual multiplied by
        # the Hessian of psi_theta, so it pulls weakly where psi_theta is flat in a direction
        asc = batch_inner((mapped_back - y).detach(), y_inv).mean() / y[0].numel()
        loss = loss + t.ascent_weight * asc
    # + lambda * R_X, R_X = E_P ||grad psi_omega(grad psi_theta(x)) - x||^2   (eq. 51)
    if t.cycle_x:
        forward = theta_grad_at_x if theta_grad_at_x is not None else gradient(theta, x)
        cyc_x = cycle_error(gradient(omega, forward), x, t.normalization)
        loss = loss + t.lam * cyc_x
    # refinement: omega regresses onto the refined argmax, lambda * mean ||grad psi_omega(y) - x_ref||^2
    if refine is not None and t.refine:
        amort = cycle_error(y_inv, y_inv_sg, t.normalization)
        loss = loss + t.lam * amort
    # expectile: psi_omega(y) onto the lower bound <x_hat, y> - psi_theta(x_hat) of psi_theta^*(y)
    if t.expectile_weight:
        with torch.no_grad():
            at = theta_at_y_inv if theta_at_y_inv is not None else theta(y_inv_sg)
            lower = batch_inner(y_inv_sg, y) - at
        expec = expectile_loss(lower - (omega_y if omega_y is not None else omega(y)), t.expectile)
        loss = loss + t.expectile_weight * expec
    if t.l1:
        loss = loss + t.l1 * (theta.l1_norm() + omega.l1_norm())
    with torch.no_grad():
        corr = psi_x - psi_y_inv + inner
        w2 = x.flatten(1).square().sum(1).mean() + y.flatten(1).square().sum(1).mean() - 2 * corr
    parts = {"correlation": corr.detach(), "cycle_y": cyc_y.detach(), "cycle_x": cyc_x.detach(), "w2_dual": w2.detach()}
    # each cycle error over that of the constant map at the batch mean: ~0 while the two maps invert each
    # other, >= 1 once they have collapsed (the training loop's health check reads these)
    with torch.no_grad():
        parts["cycle_y_rel"] = _over_constant_map(cyc_y, y, t.normalization) if t.cycle_y else zero
        parts["cycle_x_rel"] = _over_constant_map(cyc_x, x, t.normalization) if t.cycle_x else zero
    if refine is not None and t.refine:
        parts["amortization"] = amort.detach()
    if t.expectile_weight:
        parts["expectile"] = expec.detach()
    if t.ascent_weight:
        parts["ascent"] = asc.detach()
    return loss, parts
