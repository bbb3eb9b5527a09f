"""The solver interface shared by W2GN and the baselines, and the helpers of their training loops.

A solver is configured by a dataclass of hyper-parameters, takes two sample sources (samplers,
arrays/tensors of rows, or callables) and returns a :class:`~w2gn.fitted_map.TransportMap`. It owns
no plotting and no file formats.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from tqdm.auto import tqdm

from ..affine_frame import FRAME_MODES, FramedSampler, estimate_frame
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

    Reliability (see RELIABILITY.md): ``checkpoint_dir`` (``None`` = no checkpoints) receives a
    checkpoint every ``checkpoint_every`` iterations, or, when that is 0, every
    ``checkpoint_seconds`` of wall time (0 = never by time), plus one at the end of a run that wrote
    any; the newest ``keep_checkpoints`` are kept. ``resume``: continue from the newest valid
    checkpoint in ``checkpoint_dir`` (a fresh start if it has none); ``force_resume``: even if the
    data or the configuration differ from the checkpoint's. A fresh run refuses a folder that holds
    another run's checkpoints unless ``overwrite_checkpoints`` (which deletes them). ``explode_factor``: stop when
    ``|loss|`` exceeds this multiple of its running average (floor 1; 0 = off), besides NaN/inf
    losses, gradients and weights. ``max_restarts``: on divergence, restart from the last good
    state with the learning rates multiplied by ``restart_lr_factor``, at most this many times.

    Coordinates: ``precondition`` (:mod:`w2gn.affine_frame`) is the frame the networks train in, for
    vector samples: ``"bures"`` (default: each side centred, and whitened so that the best affine map
    between them is the identity), ``"standardize"`` (centred and scaled by one number per side), or
    ``"none"`` (the user's coordinates, as the paper's experiments). The fitted map folds the frame
    back in, so its inputs and outputs are always the user's coordinates.
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
    max_restarts: int = 0
    restart_lr_factor: float = 0.5
    precondition: str = "bures"

    def validate(self) -> None:
        for name in ("iterations", "batch_size", "log_every", "keep_checkpoints"):
            if int(getattr(self, name)) <= 0:
                raise W2GNUserError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise W2GNUserError(f"lr must be a positive number, got {self.lr}")
        for name in ("checkpoint_every", "checkpoint_seconds", "max_restarts", "explode_factor"):
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Solver(ABC):
    """Base class: ``Solver(config).fit(source, target) -> TransportMap``.

    The base class owns the training loop (:meth:`run`): sampling stream, progress bar, periodic
    statistics, callback, divergence checks and restarts, the last-good snapshot, checkpoints and
    resume (:mod:`w2gn.checkpoint`). A method implements :meth:`setup` (build networks and
    optimisers, pretrain), :meth:`step` (one training iteration, optimiser steps included; all its
    randomness from the ``generator`` it is given or torch's global RNG) and :meth:`current_map` (a
    live map over its networks), and lists its networks and optimisers in :meth:`modules` and
    :meth:`optimizers` (what a checkpoint holds). Any other state the future of a run depends on goes
    in :meth:`extra_state`; work in :meth:`setup` that a checkpoint overwrites is skipped on resume
    through :attr:`resume_skip_fields`.
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
        self._checkpoints = None
        self._gen: torch.Generator | None = None
        self.load_loop_state({})

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

    def extra_state(self) -> dict[str, Any]:
        """Solver-specific plain data/tensors a checkpoint must hold besides networks and optimisers."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

    #: configuration fields zeroed while :meth:`setup` runs for a resumed fit: work whose result the
    #: checkpoint overwrites anyway (identity pretraining)
    resume_skip_fields: ClassVar[tuple[str, ...]] = ("pretrain_iterations",)

    # --------------------------------------------------------------------------- shared machinery
    def fit(self, source, target, callback: Callback | None = None, **setup_kwargs: Any) -> TransportMap:
        """Train on samples of ``source`` (P) and ``target`` (Q) and return the fitted map.

        ``source``/``target``: :class:`~w2gn.distributions.Sampler`, arrays/tensors of rows, or
        callables ``fn(n)``. Raises :class:`~w2gn.errors.DivergenceError` when the loss, a gradient
        or the weights become non-finite or the loss explodes (after ``max_restarts`` restarts);
        :attr:`last_good_state` then holds the last good state and the error names the last good
        checkpoint. With ``config.resume`` the newest valid checkpoint of ``config.checkpoint_dir``
        is loaded after :meth:`setup` (which then skips pretraining) and training continues from it.
        """
        from .. import checkpoint as ckpt

        c = self.config
        device, dtype = resolve_device(c.device), resolve_dtype(c.dtype)
        p, q = prepare_samplers(source, target, device, dtype)
        # the networks train in the frame's coordinates; result() folds it back into the map. Estimated
        # with a generator of its own, so the training stream (and a resume) is the same with or without it
        self.frame = estimate_frame(p, q, c.precondition, c.seed)
        if self.frame is not None:
            p, q = FramedSampler(p, self.frame, "source"), FramedSampler(q, self.frame, "target")
        gen = torch.Generator(device=device).manual_seed(int(c.seed))
        self.history = []
        self.iteration = 0
        self.last_good_state = None
        self.load_loop_state({})
        self._checkpoints = None
        if c.checkpoint_dir:
            self._checkpoints = ckpt.CheckpointWriter(c.checkpoint_dir, c.keep_checkpoints, c.checkpoint_every,
                                                      c.checkpoint_seconds)
        # loaded on the CPU: RNG states must stay CPU tensors; load_state_dict moves weights to the device
        found = self._resume_state() if c.resume else None
        if self._checkpoints is not None and not c.resume:
            self._checkpoints.start_fresh(c.overwrite_checkpoints)
        if found is not None:
            path, state = found
            ckpt.check_resumable(state, self, p, q, str(path), force=c.force_resume)
            full = self.config
            skip = {f: 0 for f in self.resume_skip_fields if hasattr(full, f)}
            self.config = dataclasses.replace(full, **skip)
            try:
                self.setup(p, q, gen, **setup_kwargs)
            finally:
                self.config = full
            ckpt.restore(self, state, gen, str(path))
            ckpt.restore_samplers(state, p, q)
            if float(state["config"].get("lr", c.lr)) != float(c.lr):
                for opt in self.optimizers().values():  # the user asked for another learning rate
                    for group in opt.param_groups:
                        group["lr"] = float(c.lr)
            self.resumed_from = str(path)
        else:
            self.resumed_from = None
            self.setup(p, q, gen, **setup_kwargs)
        self.run(p, q, gen, callback)
        return self.result(p, q)

    def _resume_state(self) -> tuple[Any, dict[str, Any]] | None:
        """``(path, state)`` of the newest valid checkpoint of ``checkpoint_dir`` (``None``: start fresh);
        multi-process training reads it on rank 0 and hands it to every rank."""
        from .. import checkpoint as ckpt

        return ckpt.load_latest(self.config.checkpoint_dir)

    def result(self, p: Sampler, q: Sampler) -> TransportMap:
        """The final map, with configuration, history and data identity in ``info``."""
        fitted = self.framed_map()
        for m in self.modules().values():
            m.eval()
        fitted.info.update({"config": _plain(self.config.to_dict()), "history": self.history,
                            "source": p.describe(), "target": q.describe(), "iterations": self.iteration})
        if self.restart_log:
            fitted.info["restarts"] = list(self.restart_log)
        return fitted

    def framed_map(self) -> TransportMap:
        """:meth:`current_map` in the user's coordinates: the live networks with the fit's frame folded in."""
        fitted = self.current_map()
        fitted.frame = getattr(self, "frame", None)
        return fitted

    def loop_state(self) -> dict[str, Any]:
        """The training loop's own counters (saved in checkpoints so a resumed run behaves the same)."""
        return {"loss_ema": self._loss_ema, "restarts": self.restarts, "restart_log": list(self.restart_log),
                "seconds": self.history[-1]["seconds"] if self.history else 0.0}

    def load_loop_state(self, state: dict[str, Any]) -> None:
        self._loss_ema = state.get("loss_ema")
        self.restarts = int(state.get("restarts", 0))
        self.restart_log = [dict(r) for r in state.get("restart_log", [])]
        self._seconds_before = float(state.get("seconds", 0.0))

    def run(self, p: Sampler, q: Sampler, gen: torch.Generator, callback: Callback | None = None) -> None:
        """Train from :attr:`iteration` up to ``config.iterations``.

        Checks every step on CPU (every ``log_every`` steps on GPU, where a check stalls the queue)
        that the loss and the gradients are finite and that the loss has not exploded; writes
        checkpoints when due; on divergence restarts from the last good state with a lower learning
        rate (``max_restarts`` times) or raises :class:`DivergenceError` naming the last good checkpoint.
        """
        from .. import checkpoint as ckpt

        if not hasattr(self, "restarts"):  # run() called without fit()
            self.load_loop_state({})
        writer = getattr(self, "_checkpoints", None)
        self._p, self._q, self._gen = p, q, gen
        if self.last_good_state is None:
            self.last_good_state = self.snapshot()
        # A state saved at iteration j holds the weights whose loss is computed at step j: it becomes
        # "good" only once that loss has passed the checks; until then it is pending.
        self._pending: dict[str, Any] | None = None
        while True:
            try:
                self._loop(p, q, gen, callback, writer)
                if self._pending is not None:
                    self.last_good_state, self._pending = self._pending, None
                return
            except KeyboardInterrupt as exc:
                # Ctrl-C / SIGTERM may land inside an optimiser step: save the last good state instead
                good = self.last_good_state
                exc.checkpoint = None  # type: ignore[attr-defined]
                if writer is not None and good is not None and "optimizers" in good:
                    if writer.last_iteration is None or good["iteration"] > writer.last_iteration:
                        writer.write(good)
                    exc.checkpoint = str(writer.last_path) if writer.last_path is not None else None  # type: ignore[attr-defined]
                raise
            except DivergenceError as exc:
                self._pending = None
                good = self.last_good_state
                exc.last_good_iteration = good["iteration"] if good is not None else None
                if writer is not None:
                    # checkpoints from the failing step on hold the weights that failed: set them aside
                    writer.discard_from(exc.iteration)
                exc.checkpoint = str(writer.last_path) if writer is not None and writer.last_path is not None else None
                if self.restarts >= self.config.max_restarts or good is None or "optimizers" not in good:
                    raise
                log = list(self.restart_log)  # restore() rewinds the loop counters to the snapshot's
                ckpt.restore(self, good, gen, "last good state")
                ckpt.restore_samplers(good, p, q)
                self.restart_log = log
                factor = self.config.restart_lr_factor
                lrs = []
                for opt in self.optimizers().values():
                    for group in opt.param_groups:
                        group["lr"] = float(group["lr"]) * factor
                        lrs.append(group["lr"])
                self.restart_log.append({"diverged_at": exc.iteration, "quantity": exc.quantity,
                                         "restarted_from": self.iteration, "lr": min(lrs) if lrs else float("nan")})
                self.restarts = len(self.restart_log)
                tqdm.write(f"{self.name}: {exc}; restart {self.restarts}/{self.config.max_restarts} from iteration "
                           f"{self.iteration} with learning rate x{factor}", file=sys.stderr)

    def _loop(self, p: Sampler, q: Sampler, gen: torch.Generator, callback: Callback | None, writer) -> None:
        c = self.config
        mods = self.modules()
        device = next(iter(mods.values())).parameters().__next__().device
        # on CPU a per-step check is free; on GPU it would stall the queue, so check when logging
        sync_every = 1 if device.type == "cpu" else c.log_every
        start = time.perf_counter() - self._seconds_before
        bar = tqdm(total=c.iterations, initial=self.iteration, disable=not c.progress, desc=self.name, leave=False)
        for m in mods.values():
            m.train()
        wrote_any = writer is not None and writer.every > 0
        try:
            if wrote_any and self.iteration == 0 and writer.last_iteration != 0:
                self._write_checkpoint(writer)  # a last good state on disk before the first step
            while self.iteration < c.iterations:
                it = self.iteration
                out = self.step(it, p, q, gen)
                self.iteration = it + 1
                bar.update(1)
                checked = self.iteration % sync_every == 0
                if checked:
                    self._check_step(out, mods, it)
                stop = False
                if self.iteration % c.log_every == 0 or self.iteration == c.iterations:
                    if not checked:
                        self._check_step(out, mods, it)
                    checked = True
                    self._check_weights(mods, it)
                    stats = {k: check_finite(v.detach(), it, k) for k, v in out.items()}
                    for m in mods.values():
                        m.eval()
                    stats.update(self.extra_stats(p, q))
                    self._pending = self.snapshot()
                    row = self._record(self.iteration, start, stats)
                    bar.set_postfix(loss=f"{stats['loss']:.4g}")
                    stop = bool(callback(self.iteration, self.framed_map(), row)) if callback is not None else False
                    for m in mods.values():
                        m.train()
                if writer is not None and (writer.due(self.iteration) or (self.iteration == c.iterations and wrote_any)
                                           or (stop and wrote_any)):
                    if not checked:
                        self._check_step(out, mods, it)
                    self._check_weights(mods, it)
                    self._write_checkpoint(writer)
                    wrote_any = True
                if stop:
                    break
        finally:
            bar.close()
            for m in mods.values():
                m.eval()

    def _check_step(self, out: dict[str, torch.Tensor], mods: dict[str, torch.nn.Module], it: int) -> None:
        """Stop on a NaN/inf loss, a NaN/inf gradient or a loss past ``explode_factor`` x its running mean."""
        loss = check_finite(out["loss"].detach(), it, "loss")
        for name, m in mods.items():
            if not grads_finite(m.parameters()):
                raise DivergenceError(it, f"gradient of {name}", float("nan"), "a parameter gradient is NaN/inf")
        factor = self.config.explode_factor
        if factor:
            ref = self._loss_ema
            if ref is not None and abs(loss) > factor * max(ref, 1.0):
                raise DivergenceError(it, "loss", loss, f"|loss| exceeds {factor:g} x its running average {ref:.4g}")
            # an exponential moving average of |loss| over roughly the last 100 checks
            self._loss_ema = abs(loss) if ref is None else 0.99 * ref + 0.01 * abs(loss)
        pending = getattr(self, "_pending", None)
        if pending is not None and it >= pending["iteration"]:
            self.last_good_state, self._pending = pending, None

    @staticmethod
    def _check_weights(mods: dict[str, torch.nn.Module], it: int) -> None:
        for name, m in mods.items():
            if not all(bool(torch.isfinite(v).all()) for v in m.parameters()):
                raise DivergenceError(it, f"weights of {name}", float("nan"), "a parameter became NaN/inf")

    def _write_checkpoint(self, writer) -> None:
        from .. import checkpoint as ckpt

        state = ckpt.capture(self, self._gen, self._p, self._q, copy_tensors=False)
        writer.write(state)

    def snapshot(self) -> dict[str, Any]:
        """Copy of the full training state at :attr:`iteration` (in memory): weights under
        ``"modules"``, optimisers, RNG states, history -- what a restart after divergence restores."""
        from .. import checkpoint as ckpt

        if getattr(self, "_gen", None) is None:
            return {"iteration": self.iteration, "modules": {
                name: {k: v.detach().clone() for k, v in m.state_dict().items()} for name, m in self.modules().items()}}
        return ckpt.capture(self, self._gen, getattr(self, "_p", None), getattr(self, "_q", None), copy_tensors=True)

    def _record(self, iteration: int, start: float, stats: dict[str, float]) -> dict[str, float]:
        row = {"iteration": float(iteration), "seconds": time.perf_counter() - start, **stats}
        self.history.append(row)
        return row


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
