"""A training-time budget as a solver callback: stop after a number of seconds, and end the learning-rate
schedule there."""

from __future__ import annotations

from typing import Any

from ..errors import W2GNUserError

#: the stop reason a spent budget reports (:attr:`w2gn.solvers.Solver.stop_reason`)
REASON = "time budget"


class TimeBudget:
    """Callback for :meth:`Solver.fit` that stops training once ``seconds`` of training have passed.

    At every log step it re-aims the run's horizon (:meth:`Solver.set_horizon`: where the loop ends,
    the horizon a cosine ``lr_schedule`` decays over, and the progress bar's total) at the iteration
    the measured speed reaches when the budget runs out, capped by ``max_iterations``, so that a
    schedule ends at the budget instead of being cut off part-way. The configuration is not changed.
    Time is the solver's own clock (``row["seconds"]``: the training loop's wall seconds, those
    before a resume included; pretraining excluded). ``then`` is an optional further callback whose
    stop request is honoured too. A stop because of the budget is reported as ``"time budget"``.

    Single process only: under ``torchrun`` each rank would re-aim its own schedule.
    """

    def __init__(self, solver: Any, seconds: float, max_iterations: int | None = None, then: Any = None) -> None:
        if not seconds > 0:
            raise W2GNUserError(f"the time budget must be > 0 seconds, got {seconds}")
        self.solver = solver
        self.seconds = float(seconds)
        self.max_iterations = int(max_iterations if max_iterations is not None else solver.config.iterations)
        self.then = then

    def __call__(self, iteration: int, fitted: Any, row: dict[str, float]) -> bool | str:
        answer = self.then(iteration, fitted, row) if self.then is not None else None
        if self.aim(iteration, float(row["seconds"])):
            return REASON
        return answer or False

    def plan(self, iteration: int, spent: float) -> int:
        """Where the run should end after ``spent`` seconds at ``iteration``: the step the measured speed
        reaches at the budget, at least the next step and at most ``max_iterations``."""
        rate = iteration / max(spent, 1e-9)
        horizon = iteration + int(rate * max(0.0, self.seconds - spent))
        # never past max_iterations: at the last planned step the horizon must not move on
        return min(self.max_iterations, max(iteration + 1, horizon))

    def aim(self, iteration: int, spent: float) -> bool:
        """Re-aim the solver's horizon after ``spent`` seconds at ``iteration``; True once the budget is used up.

        For callers that measure time themselves (e.g. excluding their own evaluations)."""
        horizon = self.plan(iteration, spent)
        # a stop at a horizon the budget set is the budget's doing; at the cap, the iteration count's
        self.solver.set_horizon(horizon, REASON if horizon < self.max_iterations else "iterations")
        return spent >= self.seconds
