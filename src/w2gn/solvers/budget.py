"""A training-time budget as a solver callback: stop after a number of seconds, and end the learning-rate
schedule there."""

from __future__ import annotations

from typing import Any

from ..errors import W2GNUserError


class TimeBudget:
    """Callback for :meth:`Solver.fit` that stops training once ``seconds`` of training have passed.

    At every log step it re-aims the solver's ``config.iterations`` (the horizon a cosine
    ``lr_schedule`` decays over) at the iteration the measured speed reaches when the budget runs
    out, capped by ``max_iterations``, so that a schedule ends at the budget instead of being cut off
    part-way. Time is the solver's own clock (``row["seconds"]``: the training loop's wall seconds,
    those before a resume included; pretraining excluded). ``then`` is an optional further
    callback whose stop request is honoured too.

    Single process only: under ``torchrun`` each rank would re-aim its own schedule.
    """

    def __init__(self, solver: Any, seconds: float, max_iterations: int | None = None, then: Any = None) -> None:
        if not seconds > 0:
            raise W2GNUserError(f"the time budget must be > 0 seconds, got {seconds}")
        self.solver = solver
        self.seconds = float(seconds)
        self.max_iterations = int(max_iterations if max_iterations is not None else solver.config.iterations)
        self.then = then

    def __call__(self, iteration: int, fitted: Any, row: dict[str, float]) -> bool:
        stop = bool(self.then(iteration, fitted, row)) if self.then is not None else False
        return self.aim(iteration, float(row["seconds"])) or stop

    def aim(self, iteration: int, spent: float) -> bool:
        """Re-aim the horizon after ``spent`` seconds at ``iteration``; True once the budget is used up.

        For callers that measure time themselves (e.g. excluding their own evaluations)."""
        rate = iteration / max(spent, 1e-9)
        horizon = iteration + int(rate * max(0.0, self.seconds - spent))
        # never past max_iterations: at the last planned step the horizon must not move on
        self.solver.config.iterations = min(self.max_iterations, max(iteration + 1, horizon))
        return spent >= self.seconds
