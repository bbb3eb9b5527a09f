"""Identity pretraining of a potential: ``grad psi(x) ~ x`` (paper, Appendix C.1)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..distributions import Sampler
from ..errors import DivergenceError
from ..networks import ConvexPotential


def pretrain_identity(
    potential: ConvexPotential,
    samplers: list[Sampler],
    iterations: int = 1000,
    batch_size: int = 512,
    lr: float = 1e-3,
    tol: float = 1e-4,
    generator: torch.Generator | None = None,
    check_every: int = 50,
    target: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """Fit ``grad psi`` to the identity on samples from every sampler in ``samplers``.

    ``target`` (optional) replaces the identity by another map ``x -> target(x)`` (e.g. the best
    linear map between Gaussian fits of the data, for :class:`~w2gn.solvers.W2GNConfig`'s
    ``init="linear"``).

    Minimises ``E||grad psi(x) - x||^2`` with Adam, projecting the constrained weights after every
    step, and stops early when the loss relative to ``E||x||^2`` falls below ``tol``. Pretraining on
    both the source and the target covers the region where the forward and the conjugate networks
    are evaluated. Returns the last relative loss.
    """
    opt = torch.optim.Adam(potential.parameters(), lr=lr)
    per = max(1, batch_size // max(1, len(samplers)))
    rel = float("inf")
    potential.train()
    for it in range(int(iterations)):
        x = torch.cat([s.sample(per, generator) for s in samplers], dim=0)
        g = potential.gradient(x, create_graph=True)
        goal = x if target is None else target(x).detach()
        err = (g - goal).flatten(1).square().sum(1).mean()
        opt.zero_grad(set_to_none=True)
        err.backward()
        opt.step()
        potential.project()
        if (it + 1) % check_every == 0 or it == iterations - 1:
            scale = x.flatten(1).square().sum(1).mean().clamp_min(1e-12)
            rel = float(err.detach() / scale)
            if rel != rel or rel == float("inf"):
                raise DivergenceError(it, "identity pretraining loss", rel)
            if rel < tol:
                break
    return rel


def linear_init_maps(
    p: Sampler, q: Sampler, generator: torch.Generator | None = None, n: int | None = None
) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """The best linear (Gaussian) maps between ``p`` and ``q``, estimated from samples.

    Fits ``N(m_p, S_p)`` and ``N(m_q, S_q)`` to ``n`` samples of each (default ``max(8192, 20 D)``)
    and returns the closed-form OT map between the fits and its inverse (Bures maps,
    :func:`w2gn.metrics.bures_map`), as functions on flattened rows in the samplers' dtype. Used to
    initialise W2GN at the affine part of the solution instead of the identity.
    """
    from ..metrics import bures_map

    n = n or max(8192, 20 * p.dim)
    xs = p.sample(n, generator).flatten(1).to(torch.float64)
    ys = q.sample(n, generator).flatten(1).to(torch.float64)
    d = xs.shape[1]
    ridge = 1e-6 * torch.eye(d, dtype=torch.float64, device=xs.device)
    mx, my = xs.mean(0), ys.mean(0)
    cx = torch.cov(xs.T).reshape(d, d) + ridge
    cy = torch.cov(ys.T).reshape(d, d) + ridge
    a, b = bures_map(mx, cx, my, cy)
    ai, bi = bures_map(my, cy, mx, cx)

    def affine(mat: torch.Tensor, vec: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        def f(x: torch.Tensor) -> torch.Tensor:
            flat = x.flatten(1)
            return (flat @ mat.T.to(flat.dtype) + vec.to(flat.dtype)).reshape(x.shape)

        return f

    return affine(a, b), affine(ai, bi)
