"""Exponential moving averages of a solver's networks: a feature of the shared training loop.

Every solver gets it through ``SolverConfig.ema_decay``; the fitted map is then built from the
averages (:meth:`w2gn.solvers.Solver.final_modules`). An average of networks whose constrained
weights are non-negative keeps them non-negative, so input-convexity survives averaging.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch

#: the name an averaged network has in checkpoints (``theta`` -> ``theta_ema``)
SUFFIX = "_ema"


class WeightAverage:
    """Averaged copies of ``modules`` (by name), moved towards the live networks after every step.

    With decay ``d_t = min(decay, (1 + t) / (10 + t))`` (warm-up: early averages follow the live
    weights closely), parameters move as ``avg <- avg + (1 - d_t) (live - avg)``; buffers are copied.
    """

    def __init__(self, modules: Mapping[str, torch.nn.Module], decay: float) -> None:
        self.decay = float(decay)
        self.live = dict(modules)
        self.averages = {name: copy.deepcopy(m).requires_grad_(False) for name, m in self.live.items()}
        # the (average, live) parameter lists, walked once: loading a state copies into these same tensors
        self._pairs = {name: (list(self.averages[name].parameters()), [p.detach() for p in m.parameters()])
                       for name, m in self.live.items()}

    @torch.no_grad()
    def update(self, iteration: int) -> None:
        """Move each average towards its live network after the step numbered ``iteration`` (0-based)."""
        d = min(self.decay, (1.0 + iteration) / (10.0 + iteration))
        for name, live in self.live.items():
            avg = self.averages[name]
            # one call over the list (per-tensor lerps are a loop of tiny kernels, paid on every step)
            torch._foreach_lerp_(*self._pairs[name], 1.0 - d)
            for a, b in zip(avg.buffers(), live.buffers()):
                a.copy_(b)

    def named(self) -> dict[str, torch.nn.Module]:
        """The averages under their checkpoint names (``<name>_ema``)."""
        return {name + SUFFIX: avg for name, avg in self.averages.items()}
