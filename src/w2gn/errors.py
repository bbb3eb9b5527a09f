"""Exceptions with a message a user can act on.

Two kinds exist: :class:`W2GNUserError` for bad input (a wrong shape, a file that cannot be read, a
nonsense option) -- the CLI prints its message on one line and exits with status 2 -- and
:class:`DivergenceError` for a training run whose loss or gradients stopped being finite.
"""

from __future__ import annotations


class W2GNUserError(ValueError):
    """Bad input from the user: the message says what, where, and what to do."""


class DivergenceError(RuntimeError):
    """A training run produced a non-finite or exploding quantity and was stopped.

    Attributes
    ----------
    iteration:
        The (0-based) training iteration at which the bad value appeared.
    quantity:
        Name of the quantity that went bad (``"loss"``, ``"gradient of psi_theta"``, ...).
    value:
        The offending value (``nan``, ``inf`` or a finite value past the explosion threshold).
    checkpoint:
        Path of the last good checkpoint on disk (set by the training loop; ``None`` if none).
    last_good_iteration:
        Iteration of the last good state kept in memory (set by the training loop).
    """

    def __init__(self, iteration: int, quantity: str, value: float, detail: str = "") -> None:
        self.iteration = iteration
        self.quantity = quantity
        self.value = value
        self.checkpoint: str | None = None
        self.last_good_iteration: int | None = None
        msg = f"training diverged at iteration {iteration}: {quantity} = {value}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)

    def __str__(self) -> str:
        msg = super().__str__()
        if self.checkpoint:
            msg += f"; last good checkpoint: {self.checkpoint}"
        return msg
