"""Exceptions with a message a user can act on.

Two kinds exist: :class:`W2GNUserError` for bad input (a wrong shape, a file that cannot be read, a
nonsense option) -- the CLI prints its message on one line and exits with status 2 -- and
:class:`DivergenceError` for a training run whose loss or gradients stopped being finite. A third,
:class:`WriteFailedError`, is an operating-system error while writing (disk full): exit status 1.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


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


class WriteFailedError(OSError):
    """A file could not be written (disk full, quota, I/O error); the write left no partial file.

    The message says what could not be written, in which folder, why (and, for a full disk, how
    much room is left there), and -- when the run has a checkpoint to fall back on -- which one and
    the command that continues from it. The CLI prints it on one line and exits with status 1.

    Attributes
    ----------
    path:
        The file that could not be written.
    checkpoint:
        The newest complete checkpoint of the run (``None`` if it has none).
    resume:
        How to continue from ``checkpoint`` (a command line or a Python hint), or ``None``.
    """

    def __init__(self, what: str, path: str | os.PathLike, cause: OSError, checkpoint: str | None = None,
                 resume: str | None = None) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.path = Path(path)
        self.checkpoint = checkpoint
        self.resume = resume
        folder = self.path.parent
        why = cause.strerror or str(cause)
        if cause.errno in (errno.ENOSPC, errno.EDQUOT):
            try:
                free = f"{shutil.disk_usage(folder).free / 1e6:.3g} MB free"
            except OSError:
                free = "free space unknown"
            where = f"the folder {folder} is full ({free})"
        else:
            where = f"in the folder {folder}"
        msg = f"could not write {what} {self.path.name}: {why}; {where}; no partial file was left"
        if checkpoint:
            msg += f"; last good checkpoint {checkpoint}"
            if resume:
                msg += f"; free space, then continue with {resume}"
        else:
            msg += "; the run has no checkpoint to continue from"
        self.message = msg

    def __str__(self) -> str:
        return self.message
