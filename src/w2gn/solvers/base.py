"""The solver interface shared by W2GN and the baselines, and the helpers of their training loops.

A solver is configured by a dataclass of hyper-parameters, takes two sample sources (samplers,
arrays/tensors of rows, or callables) and returns a :class:`~w2gn.fitted_map.TransportMap`. It owns
no plotting and no file formats.
"""

from __future__ import annotations

import dataclasses
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from ..affine_frame import FRAME_MODES, FramedSampler, estimate_frame
from ..checkpoint import CheckpointWriter, load_latest
from ..distributions import Sampler, as_sampler
from ..errors import W2GNUserError
from ..fitted_map import TransportMap
from .ema import WeightAverage
from .loop import TrainingLoop, check_finite, grads_finite  # noqa: F401  (re-exported)
from .schedule import SCHEDULES, LRSchedule
from .state import capture_state, check_resumable, restore_state

#: ``callback(iteration, current_map, stats) -> stop?``; called every ``log_every`` iterations with
#: the live (not copied) map and a dict of float statistics. A true value stops training; a string
#: is also the reason reported (e.g. ``"time budget"``), any other true value reports ``"callback"``.
Callback = Callable[[int, TransportMap, dict[str, float]], "bool | str | None"]

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


@dataclasses.dataclass
class SolverConfig:
    """Options every solver has.

    ``iterations``: training steps; ``batch_size``: samples per distribution per step; ``lr``: Adam
    learning rate; ``seed``: seeds the networks' initialisation and the sampling stream;
    ``device``/``dtype``: where and in which precision to train; ``log_every``: how often statistics
    are computed (the only host synchronisation of the loop besides the divergence check) and the
    callback called; ``progress``: show a tqdm bar.

    Reliability (see RELIABILITY.md): ``checkpoint_dir`` (``None`` = no checkpoints) receives a
    checkpoint every ``checkpoint_every`` iterations, or, when that is 0, every
    ``checkpoint_seconds`` of wall time (0 = never by time), plus one at the end of a run that wrote
    any; the newest ``keep_checkpoints`` are kept. ``resume``: continue from the newest valid
    checkpoint in ``checkpoint_dir`` (a fresh start if it has none); ``force_resume``: even if the
    data or the configuration differ from the checkpoint's. A fresh run refuses a folder that holds
    another run's checkpoints unless ``overwrite_checkpoints`` (which deletes them). ``explode_factor``: stop when
    ``|loss|`` exceeds this multiple of its running average (floor 1; 0 = off), besides NaN/inf
    losses, gradients and weights. ``collapse_limit``: stop when a cycle error a solver reports exceeds
    this multiple of the error of the constant map at the batch mean (the ``*_rel`` statistics; 0 = off),
    once it has been below half of it: the potentials have collapsed (dead units, a constant map) while
    the loss stays moderate. ``max_restarts``: on divergence, restart from the last good
    state with the learning rates multiplied by ``restart_lr_factor``, at most this many times.

    Coordinates: ``precondition`` (:mod:`w2gn.affine_frame`) is the frame the networks train in, for
    vector samples: ``"diagonal"`` (default: each side centred, and each coordinate of both sides given
    the geometric mean of their two deviations), ``"bures"`` (centred and whitened so that the best
    affine map between the sides is the identity: best for near-Gaussian data, worse on the non-linear
    benchmark pairs), ``"standardize"`` (centred and scaled by one number per side), or ``"none"``
    (the user's coordinates, as the paper's experiments). The fitted map folds the frame
    back in, so its inputs and outputs are always the user's coordinates.
    Loop features every solver gets: ``lr_schedule`` (``"constant"`` or ``"cosine"``, decaying to
    ``lr * lr_final_factor`` at ``iterations``; :class:`~w2gn.solvers.schedule.LRSchedule`), ``lr_warmup``
    (steps of linear warm-up of every rate, 0 = none) and
    ``ema_decay`` (exponential moving average of the networks' weights, 0 = off; the fitted map uses
    the averages; :class:`~w2gn.solvers.ema.WeightAverage`).
    """

    iterations: int = 5000
    batch_size: int = 512
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    log_every: int = 100
    progress: bool = True
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0
    checkpoint_seconds: float = 120.0
    keep_checkpoints: int = 3
    resume: bool = False
    force_resume: bool = False
    overwrite_checkpoints: bool = False
    explode_factor: float = 1e4
    collapse_limit: float = 0.5
    max_restarts: int = 0
    restart_lr_factor: float = 0.5
    precondition: str = "diagonal"
    lr_schedule: str = "constant"
    lr_final_factor: float = 0.01
    lr_warmup: int = 0
    ema_decay: float = 0.0

    def validate(self) -> None:
        for name in ("iterations", "batch_size", "log_every", "keep_checkpoints"):
            if int(getattr(self, name)) <= 0:
                raise W2GNUserError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise W2GNUserError(f"lr must be a positive number, got {self.lr}")
        for name in ("checkpoint_every", "checkpoint_seconds", "max_restarts", "explode_factor", "collapse_limit",
                     "lr_warmup"):
            if not getattr(self, name) >= 0:
                raise W2GNUserError(f"{name} must be >= 0, got {getattr(self, name)}")
        if 0 < self.explode_factor <= 1:
            raise W2GNUserError(f"explode_factor must be > 1 (or 0 = off), got {self.explode_factor}")
        if not 0 < self.restart_lr_factor < 1:
            raise W2GNUserError(f"restart_lr_factor must be in (0, 1), got {self.restart_lr_factor}")
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = os.fspath(self.checkpoint_dir)  # a Path is fine too; stored as text
        if self.precondition not in FRAME_MODES:
            raise W2GNUserError(f"precondition must be one of {', '.join(FRAME_MODES)}, got {self.precondition!r}")
        if self.resume and not self.checkpoint_dir:
            raise W2GNUserError("resume needs a checkpoint folder; pass --checkpoint-dir (checkpoint_dir=...)")
        if self.lr_schedule not in SCHEDULES:
            raise W2GNUserError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if not 0 <= self.ema_decay < 1 or not 0 < self.lr_final_factor <= 1:
            raise W2GNUserError("ema_decay must be in [0, 1) and lr_final_factor in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Solver(ABC):
    """Base class: ``Solver(config).fit(source, target) -> TransportMap``.

    A method implements :meth:`setup` (build networks and optimisers, pretrain), :meth:`step` (one
    training iteration, optimiser steps included; all its randomness from the ``generator`` it is
    given or torch's global RNG) and :meth:`current_map` (a live map over :meth:`final_modules`), and
    lists its networks and optimisers in :meth:`modules` and :meth:`optimizers`. Any other state the
    future of a run depends on goes in :meth:`extra_state`. :meth:`setup` may skip work that a
    checkpoint overwrites (identity pretraining) while :attr:`restoring` is true.

    The shared loop (:class:`~w2gn.solvers.loop.TrainingLoop`, run by :meth:`run`) gives every method
    the same features: sampling stream, progress bar, statistics and callback, learning-rate
    schedule (:attr:`schedule`), weight averaging (``ema_decay``), divergence checks and restarts,
    checkpoints and resume. The whole training state is plain data: :meth:`state_dict` /
    :meth:`load_state_dict`; :mod:`w2gn.checkpoint` stores it in files.
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
        self.resumed_from: str | None = None
        #: true while :meth:`setup` runs for a fit that then loads a checkpoint
        self.restoring = False
        #: the learning rates' owner (built by :meth:`prepare_loop`)
        self.schedule: LRSchedule | None = None
        self.averages: WeightAverage | None = None
        #: what ended the last run: "iterations", "time budget", "callback", "divergence" or "interrupted"
        self.stop_reason: str | None = None
        self.samplers: tuple[Sampler | None, Sampler | None, torch.Generator | None] = (None, None, None)
        self.horizon_reason = "iterations"
        self._checkpoints: CheckpointWriter | None = None
        self.load_loop_state({})

    # ------------------------------------------------------------------ what a method implements
    @abstractmethod
    def setup(self, p: Sampler, q: Sampler, generator: torch.Generator, **kwargs: Any) -> None:
        """Build (and pretrain) networks and optimisers for samplers ``p`` (source) and ``q`` (target)."""

    @abstractmethod
    def step(self, iteration: int, p: Sampler, q: Sampler, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One training iteration (optimiser steps included). Returns 0-dim tensors; ``"loss"`` is required.

        Values stay on the device: the loop only reads them every ``log_every`` iterations. The
        learning rates are already set (by :attr:`schedule`); a step must not change them.
        """

    @abstractmethod
    def current_map(self) -> TransportMap:
        """A :class:`TransportMap` over the networks of :meth:`final_modules` (no copy)."""

    @abstractmethod
    def modules(self) -> dict[str, torch.nn.Module]:
        """The trained networks by name."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers by name."""

    def extra_stats(self, p: Sampler, q: Sampler) -> dict[str, float]:
        """Additional statistics computed at logging steps (default: none)."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """Solver-specific plain data/tensors a checkpoint must hold besides networks and optimisers."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

    # ------------------------------------------------------------------------- loop features
    def final_modules(self) -> dict[str, torch.nn.Module]:
        """The networks a fitted map is built from: the weight averages when ``ema_decay`` is on, else
        :meth:`modules` (same names)."""
        if self.averages is not None:
            return dict(self.averages.averages)
        return self.modules()

    def state_modules(self) -> dict[str, torch.nn.Module]:
        """Every network the training state holds: :meth:`modules` and their averages (``<name>_ema``)."""
        mods = self.modules()
        if self.averages is not None:
            mods.update(self.averages.named())
        return mods

    def prepare_loop(self) -> None:
        """Build the loop features over the networks :meth:`setup` made: the learning-rate schedule
        (its base rates: the optimisers' current ones) and the weight averages."""
        c = self.config
        self.schedule = LRSchedule(c.lr_schedule, c.lr_final_factor, c.iterations, c.lr_warmup)
        self.schedule.attach(self.optimizers())
        self.averages = WeightAverage(self.modules(), c.ema_decay) if c.ema_decay else None
        self.horizon_reason = "iterations"

    @property
    def horizon(self) -> int:
        """The iteration this run ends at (``config.iterations`` unless a time budget re-aimed it)."""
        return self.schedule.horizon if self.schedule is not None else int(self.config.iterations)

    def set_horizon(self, iterations: int, reason: str = "iterations") -> None:
        """Re-aim the end of this run (and of the learning-rate schedule) at ``iterations``; ``reason``
        is what a stop there is reported as. The configuration is left as it is."""
        self.schedule.horizon = max(1, int(iterations))
        self.horizon_reason = reason

    # --------------------------------------------------------------------------- training state
    def state_dict(self, copy_tensors: bool = True) -> dict[str, Any]:
        """The full training state at :attr:`iteration` as plain data and tensors (what a checkpoint
        holds; see :func:`w2gn.solvers.state.capture_state`). Without ``copy_tensors`` the tensors are
        the live ones (for writing a file right away)."""
        return capture_state(self, copy_tensors=copy_tensors)

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        """Load a state from :meth:`state_dict` (or a checkpoint file) into this solver's networks,
        optimisers, schedule, counters, RNGs and samplers; ``source`` names it in errors."""
        restore_state(self, state, source)

    def snapshot(self) -> dict[str, Any]:
        """Copy of the full training state at :attr:`iteration` (in memory): what a restart after
        divergence restores. Before a run only the weights (under ``"modules"``)."""
        if self.samplers[2] is None or self.schedule is None:
            return {"iteration": self.iteration, "modules": {
                name: {k: v.detach().clone() for k, v in m.state_dict().items()} for name, m in self.modules().items()}}
        return self.state_dict(copy_tensors=True)

    def loop_state(self) -> dict[str, Any]:
        """The training loop's own counters (saved in checkpoints so a resumed run behaves the same)."""
        return {"loss_ema": self._loss_ema, "collapse_armed": self._collapse_armed, "restarts": self.restarts,
                "restart_log": list(self.restart_log),
                "seconds": self.history[-1]["seconds"] if self.history else 0.0}

    def load_loop_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`loop_state` returned (empty: a fresh run)."""
        self._loss_ema = state.get("loss_ema")
        self._collapse_armed = bool(state.get("collapse_armed", False))
        self.restarts = int(state.get("restarts", 0))
        self.restart_log = [dict(r) for r in state.get("restart_log", [])]
        self._seconds_before = float(state.get("seconds", 0.0))

    # --------------------------------------------------------------------------- shared machinery
    def fit(self, source, target, callback: Callback | None = None, **setup_kwargs: Any) -> TransportMap:
        """Train on samples of ``source`` (P) and ``target`` (Q) and return the fitted map.

        ``source``/``target``: :class:`~w2gn.distributions.Sampler`, arrays/tensors of rows, or
        callables ``fn(n)``. Raises :class:`~w2gn.errors.DivergenceError` when the loss, a gradient
        or the weights become non-finite or the loss explodes (after ``max_restarts`` restarts);
        :attr:`last_good_state` then holds the last good state and the error names the last good
        checkpoint. With ``config.resume`` the newest valid checkpoint of ``config.checkpoint_dir``
        is loaded after :meth:`setup` (which then skips pretraining) and training continues from it.
        The configuration is not changed.
        """
        c = self.config
        device, dtype = resolve_device(c.device), resolve_dtype(c.dtype)
        p, q = prepare_samplers(source, target, device, dtype)
        # the networks train in the frame's coordinates; result() folds it back into the map. Estimated
        # with a generator of its own, so the training stream (and a resume) is the same with or without it
        self.frame = estimate_frame(p, q, c.precondition, c.seed)
        if self.frame is not None:
            p, q = FramedSampler(p, self.frame, "source"), FramedSampler(q, self.frame, "target")
        gen = torch.Generator(device=device).manual_seed(int(c.seed))
        self.samplers = (p, q, gen)
        self.history = []
        self.iteration = 0
        self.last_good_state = None
        self.load_loop_state({})
        self._checkpoints = None
        if c.checkpoint_dir:
            self._checkpoints = CheckpointWriter(c.checkpoint_dir, c.keep_checkpoints, c.checkpoint_every,
                                                 c.checkpoint_seconds)
        # loaded on the CPU: RNG states must stay CPU tensors; load_state_dict moves weights to the device
        found = self._resume_state() if c.resume else None
        if self._checkpoints is not None and not c.resume:
            self._checkpoints.start_fresh(c.overwrite_checkpoints)
        if found is not None:
            check_resumable(found[1], self, p, q, str(found[0]), force=c.force_resume)
        self.restoring = found is not None
        try:
            self.setup(p, q, gen, **setup_kwargs)
        finally:
            self.restoring = False
        self.prepare_loop()
        self.resumed_from = None
        if found is not None:
            path, state = found
            self.load_state_dict(state, str(path))
            self.set_horizon(c.iterations)  # the run's length is this call's (it may extend the old one)
            self.resumed_from = str(path)
        self.run(p, q, gen, callback)
        return self.result(p, q)

    def _resume_state(self) -> tuple[Any, dict[str, Any]] | None:
        """``(path, state)`` of the newest valid checkpoint of ``checkpoint_dir`` (``None``: start fresh);
        multi-process training reads it on rank 0 and hands it to every rank."""
        return load_latest(self.config.checkpoint_dir)

    def result(self, p: Sampler, q: Sampler) -> TransportMap:
        """The final map, with configuration, history, data identity and what stopped the run in ``info``."""
        fitted = self.framed_map()
        for m in self.state_modules().values():
            m.eval()
        fitted.info.update({"config": _plain(self.config.to_dict()), "history": self.history,
                            "source": p.describe(), "target": q.describe(), "iterations": self.iteration,
                            "stop": {"reason": self.stop_reason, "iterations": self.iteration,
                                     "seconds": self.history[-1]["seconds"] if self.history else 0.0}})
        if self.restart_log:
            fitted.info["restarts"] = list(self.restart_log)
        return fitted

    def framed_map(self) -> TransportMap:
        """:meth:`current_map` in the user's coordinates: the live networks with the fit's frame folded in."""
        fitted = self.current_map()
        fitted.frame = getattr(self, "frame", None)
        return fitted

    def run(self, p: Sampler, q: Sampler, gen: torch.Generator, callback: Callback | None = None) -> None:
        """Train from :attr:`iteration` up to :attr:`horizon` with the shared loop
        (:class:`~w2gn.solvers.loop.TrainingLoop`: divergence checks and restarts, checkpoints,
        schedule, weight averages, progress and the closing line saying what stopped the run)."""
        self.samplers = (p, q, gen)
        if self.schedule is None:  # run() called without fit()
            self.prepare_loop()
        TrainingLoop(self, p, q, gen, callback, self._checkpoints).run()

def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
