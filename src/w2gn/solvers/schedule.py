"""The one owner of the learning rate during training: :class:`LRSchedule`.

The training loop (:meth:`w2gn.solvers.Solver.run`) sets every optimiser's learning rate from this
object before each step; nothing else writes ``param_group["lr"]``. Three things compose in it:

* the **shape** over the run (``"constant"``, or ``"cosine"`` from 1 down to ``final_factor``), times an
  optional linear **warm-up** from ``1 / warmup`` to 1 over the first ``warmup`` steps,
* the **horizon** the shape spans (``config.iterations``; a time budget re-aims it, see
  :class:`~w2gn.solvers.TimeBudget`, without touching the configuration),
* the **scale**: a factor of the base rates that each restart after divergence multiplies by
  ``restart_lr_factor``; the shape is applied on top of it, so a restart lowers the rate under any
  schedule.

The learning rate of a parameter group at step ``t`` is ``base_lr * (scale * shape(t / horizon))``,
``base_lr`` being the rate the group was built with (each optimiser may have its own).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import W2GNUserError

SCHEDULES = ("constant", "cosine")


class LRSchedule:
    """Learning rates of a set of optimisers as a function of the step.

    Parameters
    ----------
    kind:
        ``"constant"`` or ``"cosine"``: ``shape(t) = final + (1 - final) (1 + cos(pi t / horizon)) / 2``
        (capped at ``t = horizon``).
    final_factor:
        The cosine's value at the horizon (ignored by ``"constant"``).
    horizon:
        The step at which the cosine reaches ``final_factor``; also where the training loop stops.
    warmup:
        Steps of linear warm-up: the shape is multiplied by ``min(1, (t + 1) / warmup)`` (0 = none). Adam's
        first steps move every weight by about the full rate whatever its gradient (its second-moment
        estimate starts from one sample); a warm-up keeps that jolt small while the estimate settles.
    """

    def __init__(self, kind: str = "constant", final_factor: float = 0.01, horizon: int = 1,
                 warmup: int = 0) -> None:
        if kind not in SCHEDULES:
            raise W2GNUserError(f"lr_schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")
        if int(warmup) < 0:
            raise W2GNUserError(f"lr_warmup must be >= 0 steps, got {warmup}")
        self.kind = kind
        self.final_factor = float(final_factor)
        self.horizon = max(1, int(horizon))
        self.warmup = int(warmup)
        self.scale = 1.0
        self._base: dict[str, list[float]] = {}

    # ----------------------------------------------------------------------------- the rate
    def shape(self, iteration: int) -> float:
        """The schedule's multiplier at ``iteration`` (1 after the warm-up for ``"constant"``; no restart scale)."""
        ramp = min(1.0, (iteration + 1) / self.warmup) if self.warmup else 1.0
        if self.kind == "constant":
            return ramp
        t = min(1.0, iteration / max(1, self.horizon))
        return ramp * (self.final_factor + (1.0 - self.final_factor) * 0.5 * (1.0 + math.cos(math.pi * t)))

    def factor(self, iteration: int) -> float:
        """Multiplier of every base rate at ``iteration``: ``scale * shape(iteration)``."""
        return self.scale * self.shape(iteration)

    def attach(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
        """Remember each parameter group's current rate as its base rate (call once the optimisers exist)."""
        self._base = {name: [float(g["lr"]) for g in opt.param_groups] for name, opt in optimizers.items()}

    def apply(self, optimizers: Mapping[str, torch.optim.Optimizer], iteration: int) -> None:
        """Set every group's ``lr`` to ``base_lr * factor(iteration)`` (before the step at ``iteration``)."""
        f = self.factor(iteration)
        for name, opt in optimizers.items():
            for base, group in zip(self._base[name], opt.param_groups):
                group["lr"] = base * f

    # -------------------------------------------------------------------- what composes with it
    def restart(self, factor: float, restarts: int) -> None:
        """After the ``restarts``-th restart: the scale becomes ``factor ** restarts`` (so restarting from an
        older snapshot still lowers the rate below the previous attempt's)."""
        self.scale = float(factor) ** int(restarts)

    def lrs(self, optimizers: Mapping[str, torch.optim.Optimizer], iteration: int) -> list[float]:
        """The rates :meth:`apply` would set at ``iteration``, flattened over all groups."""
        f = self.factor(iteration)
        return [b * f for name in optimizers for b in self._base.get(name, [])]

    # ---------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Plain data: kind, final factor, horizon and restart scale (base rates come from the optimisers)."""
        return {"kind": self.kind, "final_factor": self.final_factor, "horizon": self.horizon, "scale": self.scale}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the restart scale and horizon saved by :meth:`state_dict` (the shape is the configuration's)."""
        self.scale = float(state.get("scale", 1.0))
        self.horizon = max(1, int(state.get("horizon", self.horizon)))
