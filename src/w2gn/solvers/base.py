"""The solver interface shared by W2GN and the baselines, and the helpers of their training loops.

A solver is configured by a dataclass of hyper-parameters, takes two sample sources (samplers,
arrays/tensors of rows, or callables) and returns a :class:`~w2gn.fitted_map.TransportMap`. It owns
no plotting and no file formats.
"""

from __future__ import annotations

import dataclasses
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from ..distributions import Sampler, as_sampler
from ..errors import DivergenceError, W2GNUserError
from ..fitted_map import TransportMap

#: ``callback(iteration, current_map, stats) -> stop?``; called every ``log_every`` iterations with
#: the live (not copied) map and a dict of float statistics. Returning ``True`` stops training.
Callback = Callable[[int, TransportMap, dict[str, float]], "bool | None"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float": torch.float32, "double": torch.float64}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"float32"``/``"float64"`` (or a torch dtype) -> torch dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float64):
            raise W2GNUserError(f"dtype must be float32 or float64, got {dtype}")
        return dtype
    if dtype not in _DTYPES:
        raise W2GNUserError(f"unknown dtype {dtype!r}; use float32 or float64")
    return _DTYPES[dtype]


def resolve_device(device: str | torch.device) -> torch.device:
    """Validate a device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``) against what this machine has."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise W2GNUserError(f"unknown device {device!r}; use cpu or cuda[:N]") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise W2GNUserError("device 'cuda' requested but PyTorch sees no CUDA GPU; use --device cpu")
    return dev


def prepare_samplers(source, target, device: torch.device, dtype: torch.dtype) -> tuple[Sampler, Sampler]:
    """Coerce both inputs to samplers on ``device``/``dtype`` and check they live in the same space."""
    p = as_sampler(source, "source")
    q = as_sampler(target, "target")
    if tuple(p.event_shape) != tuple(q.event_shape):
        raise W2GNUserError(
            f"source and target have different sample shapes {tuple(p.event_shape)} and {tuple(q.event_shape)}; "
            "W2 maps need both in the same space (same number of columns)"
        )
    return p.to(device, dtype), q.to(device, dtype)


def check_finite(value: torch.Tensor | float, iteration: int, quantity: str) -> float:
    """Return ``float(value)`` or raise :class:`DivergenceError` if it is NaN/inf."""
    v = float(value)
    if not math.isfinite(v):
        raise DivergenceError(iteration, quantity, v)
    return v


def grads_finite(params) -> bool:
    """True if every existing gradient of ``params`` is finite (one device sync)."""
    gs = [p.grad for p in params if p.grad is not None]
    if not gs:
        return True
    return bool(torch.stack([torch.isfinite(g).all() for g in gs]).all())


@dataclasses.dataclass
class SolverConfig:
    """Options every solver has.

    ``iterations``: training steps; ``batch_size``: samples per distribution per step; ``lr``: Adam
    learning rate; ``seed``: seeds the networks' initialisation and the sampling stream;
    ``device``/``dtype``: where and in which precision to train; ``log_every``: how often statistics
    are computed (the only host synchronisation of the loop besides the divergence check) and the
    callback called; ``progress``: show a tqdm bar.
    """

    iterations: int = 5000
    batch_size: int = 512
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    log_every: int = 100
    progress: bool = True

    def validate(self) -> None:
        for name in ("iterations", "batch_size", "log_every"):
            if int(getattr(self, name)) <= 0:
                raise W2GNUserError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not self.lr > 0:
            raise W2GNUserError(f"lr must be positive, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Solver(ABC):
    """Base class: ``Solver(config).fit(source, target) -> TransportMap``."""

    #: short method name used by the CLI and in saved maps
    name: ClassVar[str] = "solver"
    config_class: ClassVar[type[SolverConfig]] = SolverConfig

    def __init__(self, config: SolverConfig | None = None, **overrides: Any) -> None:
        cfg = config if config is not None else self.config_class()
        if overrides:
            unknown = set(overrides) - {f.name for f in dataclasses.fields(cfg)}
            if unknown:
                raise W2GNUserError(f"{self.name}: unknown option(s) {sorted(unknown)}")
            cfg = dataclasses.replace(cfg, **overrides)
        cfg.validate()
        self.config = cfg
        self.history: list[dict[str, float]] = []

    @abstractmethod
    def fit(self, source, target, callback: Callback | None = None) -> TransportMap:
        """Train on samples of ``source`` (P) and ``target`` (Q) and return the fitted map."""

    def _record(self, iteration: int, start: float, stats: dict[str, float]) -> dict[str, float]:
        row = {"iteration": float(iteration), "seconds": time.perf_counter() - start, **stats}
        self.history.append(row)
        return row
