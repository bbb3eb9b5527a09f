"""Samplers over data a user already has: arrays/tensors of rows, or a callable."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..errors import W2GNUserError
from .base import Sampler


def validate_samples(data, name: str = "data", min_rows: int = 1) -> torch.Tensor:
    """Check that ``data`` is a finite, non-empty, numeric array of rows ``(N, ...)``.

    Returns it as a tensor (dtype kept if floating, else float64). Raises
    :class:`~w2gn.errors.W2GNUserError` saying what is wrong.
    """
    if isinstance(data, torch.Tensor):
        t = data.detach()
    else:
        try:
            arr = np.asarray(data)
        except Exception as exc:  # ragged lists etc.
            raise W2GNUserError(f"{name}: cannot be read as an array ({exc})") from exc
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise W2GNUserError(f"{name}: expected numbers, got values of type {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if not torch.is_floating_point(t):
        t = t.to(torch.float64)
    if t.dim() < 2:
        raise W2GNUserError(
            f"{name}: expected a 2-D array of samples (rows = samples, columns = coordinates), "
            f"got shape {tuple(t.shape)}; reshape a single sample to (1, D) or a 1-D sample set to (N, 1)"
        )
    if t.shape[0] < min_rows or t[0].numel() == 0:
        raise W2GNUserError(f"{name}: is empty (shape {tuple(t.shape)}); at least {min_rows} sample(s) needed")
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).any(dim=tuple(range(1, t.dim()))).sum())
        raise W2GNUserError(f"{name}: contains NaN or inf values in {bad} row(s); clean or drop them first")
    return t


def fingerprint(t: torch.Tensor) -> str:
    """Short SHA-256 of a tensor's shape and bytes: the identity of a data set."""
    h = hashlib.sha256(str(tuple(t.shape)).encode())
    h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class TensorSampler(Sampler):
    """Draws rows uniformly with replacement from a fixed array of samples ``(N, *event_shape)``."""

    def __init__(self, data, name: str = "data") -> None:
        t = validate_samples(data, name)
        self._data = t
        self.event_shape = tuple(t.shape[1:])
        self.dtype = t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32
        self.device = t.device
        self._hash = fingerprint(t)
        self._moved()

    @property
    def data(self) -> torch.Tensor:
        return self._data

    def __len__(self) -> int:
        return self._data.shape[0]

    def _moved(self) -> None:
        self._data = self._data.to(device=self.device, dtype=self.dtype)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        idx = torch.randint(self._data.shape[0], (n,), generator=generator, device=self.device)
        return self._data[idx]

    def row_blocks(self, rows: int = 65536) -> Iterator[torch.Tensor]:
        """Every row, in order, in blocks of ``rows`` (flattened to ``(n, dim)``, this sampler's dtype)."""
        flat = self._data.reshape(self._data.shape[0], -1)
        yield from flat.split(rows)

    def describe(self) -> dict:
        return {**super().describe(), "rows": len(self), "sha256": self._hash}


class MappedSampler(Sampler):
    """Draws rows uniformly with replacement from a ``.npy`` file that stays on disk
    (:class:`~w2gn.io.stream.NpyRows`, from :func:`w2gn.io.open_samples`): only the drawn rows are read.

    It draws exactly the rows :class:`TensorSampler` draws from the same array with the same
    generator (the same ``torch.randint`` call, then a gather from the file), and describes the data
    the same way (same type name, row count and fingerprint), so a run may be resumed from the file
    mapped or loaded, and the result does not depend on which.
    """

    def __init__(self, rows, name: str = "data") -> None:
        self._rows = rows
        if rows.digest is None:
            rows.digest = rows.scan(name, digest=True)
        self.event_shape = (rows.shape[1],)
        self.dtype = torch.float64 if rows.dtype == np.float64 else torch.float32
        self.device = torch.device("cpu")

    def __len__(self) -> int:
        return len(self._rows)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        idx = torch.randint(len(self._rows), (n,), generator=generator, device=self.device)
        # the file's own dtype first, then this sampler's: the values TensorSampler's converted copy holds
        kept = self._rows.dtype if np.issubdtype(self._rows.dtype, np.floating) else np.float64
        batch = torch.from_numpy(self._rows.take(idx.cpu().numpy(), kept))
        return batch.to(device=self.device, dtype=self.dtype)

    def row_blocks(self, rows: int = 65536) -> Iterator[torch.Tensor]:
        """Every row, in order, in blocks of ``rows``: the values :class:`TensorSampler`'s copy holds."""
        kept = self._rows.dtype if np.issubdtype(self._rows.dtype, np.floating) else np.float64
        for blk in self._rows.blocks(rows, kept):
            yield torch.from_numpy(np.ascontiguousarray(blk)).to(device=self.device, dtype=self.dtype)

    def describe(self) -> dict:
        return {"type": "TensorSampler", "event_shape": list(self.event_shape), "rows": len(self),
                "sha256": self._rows.digest}


class CallableSampler(Sampler):
    """Wraps ``fn(n) -> (n, *event_shape)`` array/tensor (the generator is not passed to ``fn``)."""

    def __init__(self, fn: Callable[[int], object], name: str = "sampler") -> None:
        self._fn = fn
        self._name = name
        probe = validate_samples(self._call(2), name)
        self.event_shape = tuple(probe.shape[1:])

    def _call(self, n: int) -> torch.Tensor:
        out = self._fn(n)
        return out if isinstance(out, torch.Tensor) else torch.as_tensor(np.asarray(out))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        out = self._call(n)
        if tuple(out.shape) != (n, *self.event_shape):
            raise W2GNUserError(
                f"{self._name}: returned shape {tuple(out.shape)}, expected {(n, *self.event_shape)}"
            )
        return out.to(device=self.device, dtype=self.dtype)


def as_sampler(obj, name: str = "data") -> Sampler:
    """Coerce a :class:`Sampler`, an array/tensor of rows, a mapped ``.npy`` file
    (:func:`w2gn.io.open_samples`) or a callable ``fn(n)`` into a sampler."""
    if isinstance(obj, Sampler):
        return obj
    from ..io.stream import NpyRows

    if isinstance(obj, NpyRows):
        return MappedSampler(obj, name)
    if isinstance(obj, (np.ndarray, torch.Tensor, list, tuple)):
        return TensorSampler(obj, name)
    if callable(obj):
        return CallableSampler(obj, name)
    raise W2GNUserError(f"{name}: expected a Sampler, an array of samples or a callable, got {type(obj).__name__}")
