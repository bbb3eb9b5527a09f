"""The sampler interface: anything that returns a batch of samples on request."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class Sampler(ABC):
    """Draws i.i.d. batches from a distribution on ``R^event_shape``.

    Samples are produced on :attr:`device` in :attr:`dtype` (CPU/float32 by default); a
    ``torch.Generator`` on the same device makes draws repeatable. Solvers call :meth:`to` once and
    then :meth:`sample` every step, so data never travels between devices in the training loop.
    """

    event_shape: tuple[int, ...]
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32

    @property
    def dim(self) -> int:
        """Number of coordinates of one sample (the product of :attr:`event_shape`)."""
        n = 1
        for s in self.event_shape:
            n *= s
        return n

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples, shape ``(n, *event_shape)``."""

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Sampler:
        """Move the sampler's parameters/data (in place) and return it."""
        if device is not None:
            self.device = torch.device(device)
        if dtype is not None:
            self.dtype = dtype
        self._moved()
        return self

    def _moved(self) -> None:
        """Hook for subclasses holding tensors: move them to ``self.device``/``self.dtype``."""

    def describe(self) -> dict:
        """Plain-data identity of the sampler (used to recognise the data of a run)."""
        return {"type": type(self).__name__, "event_shape": list(self.event_shape)}
