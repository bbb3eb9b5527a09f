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
from tqdm.auto import tqdm

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
    """Base class: ``Solver(config).fit(source, target) -> TransportMap``.

    The base class owns the training loop (:meth:`run`): sampling stream, progress bar, periodic
    statistics, callback, divergence checks and the last-good snapshot. A method implements
    :meth:`setup` (build networks and optimisers, pretrain), :meth:`step` (one training iteration,
    optimiser steps included) and :meth:`current_map` (a live map over its networks), and lists its
    networks and optimisers in :meth:`modules` and :meth:`optimizers` (what a checkpoint must hold).
    """

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
        self.iteration = 0
        self.last_good_state: dict[str, Any] | None = None

    # ------------------------------------------------------------------ what a method implements
    @abstractmethod
    def setup(self, p: Sampler, q: Sampler, generator: torch.Generator, **kwargs: Any) -> None:
        """Build (and pretrain) networks and optimisers for samplers ``p`` (source) and ``q`` (target)."""

    @abstractmethod
    def step(self, iteration: int, p: Sampler, q: Sampler, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One training iteration (optimiser steps included). Returns 0-dim tensors; ``"loss"`` is required.

        Values stay on the device: the loop only reads them every ``log_every`` iterations.
        """

    @abstractmethod
    def current_map(self) -> TransportMap:
        """A :class:`TransportMap` over the live networks (no copy)."""

    @abstractmethod
    def modules(self) -> dict[str, torch.nn.Module]:
        """The trained networks by name."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers by name."""

    def extra_stats(self, p: Sampler, q: Sampler) -> dict[str, float]:
        """Additional statistics computed at logging steps (default: none)."""
        return {}

    # --------------------------------------------------------------------------- shared machinery
    def fit(self, source, target, callback: Callback | None = None, **setup_kwargs: Any) -> TransportMap:
        """Train on samples of ``source`` (P) and ``target`` (Q) and return the fitted map.

        ``source``/``target``: :class:`~w2gn.distributions.Sampler`, arrays/tensors of rows, or
        callables ``fn(n)``. Raises :class:`~w2gn.errors.DivergenceError` when the loss or the weights
        become non-finite; :attr:`last_good_state` then holds the last finite weights.
        """
        c = self.config
        device, dtype = resolve_device(c.device), resolve_dtype(c.dtype)
        p, q = prepare_samplers(source, target, device, dtype)
        gen = torch.Generator(device=device).manual_seed(int(c.seed))
        self.history = []
        self.iteration = 0
        self.setup(p, q, gen, **setup_kwargs)
        self.run(p, q, gen, callback)
        return self.result(p, q)

    def result(self, p: Sampler, q: Sampler) -> TransportMap:
        """The final map, with configuration, history and data identity in ``info``."""
        fitted = self.current_map()
        for m in self.modules().values():
            m.eval()
        fitted.info.update({"config": _plain(self.config.to_dict()), "history": self.history,
                            "source": p.describe(), "target": q.describe(), "iterations": self.iteration})
        return fitted

    def run(self, p: Sampler, q: Sampler, gen: torch.Generator, callback: Callback | None = None) -> None:
        """Train from :attr:`iteration` up to ``config.iterations``."""
        c = self.config
        mods = self.modules()
        device = next(iter(mods.values())).parameters().__next__().device
        # on CPU a per-step check is free; on GPU it would stall the queue, so check when logging
        sync_every = 1 if device.type == "cpu" else c.log_every
        start = time.perf_counter()
        if self.last_good_state is None:
            self.last_good_state = self.snapshot()
        bar = tqdm(total=c.iterations, initial=self.iteration, disable=not c.progress, desc=self.name, leave=False)
        for m in mods.values():
            m.train()
        try:
            while self.iteration < c.iterations:
                it = self.iteration
                out = self.step(it, p, q, gen)
                self.iteration = it + 1
                bar.update(1)
                if self.iteration % sync_every == 0:
                    check_finite(out["loss"].detach(), it, "loss")
                if self.iteration % c.log_every == 0 or self.iteration == c.iterations:
                    if not all(bool(torch.isfinite(v).all()) for m in mods.values() for v in m.parameters()):
                        raise DivergenceError(it, "weights", float("nan"), "a parameter became NaN/inf")
                    stats = {k: check_finite(v.detach(), it, k) for k, v in out.items()}
                    for m in mods.values():
                        m.eval()
                    stats.update(self.extra_stats(p, q))
                    self.last_good_state = self.snapshot()
                    row = self._record(self.iteration, start, stats)
                    bar.set_postfix(loss=f"{stats['loss']:.4g}")
                    stop = callback(self.iteration, self.current_map(), row) if callback is not None else False
                    for m in mods.values():
                        m.train()
                    if stop:
                        break
        finally:
            bar.close()
            for m in mods.values():
                m.eval()

    def snapshot(self) -> dict[str, Any]:
        """Copies of every network's weights at :attr:`iteration` (in memory)."""
        return {
            "iteration": self.iteration,
            "modules": {name: {k: v.detach().clone() for k, v in m.state_dict().items()} for name, m in self.modules().items()},
        }

    def _record(self, iteration: int, start: float, stats: dict[str, float]) -> dict[str, float]:
        row = {"iteration": float(iteration), "seconds": time.perf_counter() - start, **stats}
        self.history.append(row)
        return row


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
