"""Identity pretraining of a potential: ``grad psi(x) ~ x`` (paper, Appendix C.1)."""

from __future__ import annotations

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
) -> float:
    """Fit ``grad psi`` to the identity on samples from every sampler in ``samplers``.

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
        err = (g - x).flatten(1).square().sum(1).mean()
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
