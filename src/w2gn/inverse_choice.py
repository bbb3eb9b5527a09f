"""Which inverse a fitted W2GN map serves: the amortised ``grad psi_omega(y)`` or its refinement on the
conjugate problem of ``psi_theta`` (``refine_inverse_steps``), chosen by the smaller OT dual value.

The refined inverse is ``(grad psi_theta)^{-1}``: exact for ``psi_theta``, so it is as good as the forward
potential, and worse than the amortised network whenever ``psi_omega`` is the better-trained of the two
(hard D = 8 pair, 60 CPU-s fit: refined 1.86 % L2-UVP against the amortised 1.48 %). Which potential is
better can be read off the data without a ground truth: both are candidates for the same dual problem
(paper eq. 5, Kantorovich duality for the correlation)::

    D(theta) = E_P psi_theta(x) + E_Q psi_theta^*(y),     D(omega) = E_Q psi_omega(y) + E_P psi_omega^*(x),

each at least the optimal correlation, with equality at the optimal potential (``psi_omega`` plays the
potential of the inverse problem, whose dual has the same optimum). The gap grows with the squared error
of the potential's map, so the smaller value marks the better pair of maps. Both are evaluated on the same
samples, so most of the Monte-Carlo noise cancels in the comparison.
"""

from __future__ import annotations

import dataclasses

import torch

from .networks.base import ConvexPotential


@dataclasses.dataclass(frozen=True)
class InverseChoice:
    """Outcome of :func:`choose_inverse`: the two dual values and whether the refined inverse is kept."""

    dual_theta: float
    dual_omega: float
    refine: bool

    def to_dict(self) -> dict[str, float | bool | str]:
        return {"dual_theta": self.dual_theta, "dual_omega": self.dual_omega,
                "inverse": "refined" if self.refine else "amortised"}


def conjugate_mean(potential: ConvexPotential, start: ConvexPotential, y: torch.Tensor, steps: int,
                   method: str = "lbfgs") -> torch.Tensor:
    """``E psi^*(y)`` over the rows of ``y`` (shape ``(N, D)``): ``<x, y> - psi(x)`` at the inverse a fitted map
    with forward potential ``psi`` and amortised inverse ``grad start`` serves (``grad start(y)`` refined by
    ``steps`` of ``method`` on the conjugate problem, only the credible rows kept; ``steps`` 0: unrefined).
    A lower bound of the mean of ``psi^*``, tight once the refinement has converged."""
    from .fitted_map import TransportMap

    served = TransportMap(potential, start)
    if steps:
        served.conjugate_options.update(refine_steps=int(steps), refine_method=method)
    x = served.inverse(y)
    with torch.no_grad():
        return ((x * y).flatten(1).sum(1) - potential(x)).mean()


def choose_inverse(theta: ConvexPotential, omega: ConvexPotential, x: torch.Tensor, y: torch.Tensor,
                   steps: int, method: str = "lbfgs") -> InverseChoice:
    """Compare ``D(theta)`` and ``D(omega)`` (module doc) on samples ``x ~ P``, ``y ~ Q`` (shapes ``(N, D)``,
    the networks' coordinates), each conjugate by ``steps`` of ``method`` (``refine_method``); the refined
    inverse is kept when ``D(theta) <= D(omega)``."""
    with torch.no_grad():
        d_theta = float(theta(x).mean() + conjugate_mean(theta, omega, y, steps, method))
        d_omega = float(omega(y).mean() + conjugate_mean(omega, theta, x, steps, method))
    return InverseChoice(d_theta, d_omega, d_theta <= d_omega)


__all__ = ["InverseChoice", "choose_inverse", "conjugate_mean"]
