"""A solver's training state as plain data: what :meth:`Solver.state_dict` returns and
:meth:`Solver.load_state_dict` takes, and the check that a saved state may continue on given data.

The state holds everything the training loop's future depends on: the weights of every network
(the averaged copies too), every optimiser's state, the learning-rate schedule, the iteration, every
RNG state (:mod:`w2gn.rng`), the configuration, the identity of the data (``Sampler.describe()``),
the history and the loop's own counters. :mod:`w2gn.checkpoint` writes it to files and reads it back.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..checkpoint import FORMAT, FORMAT_VERSION, run_context
from ..errors import W2GNUserError
from ..networks import ConvexPotential, potential_spec
from ..rng import rng_state, set_rng_state

if TYPE_CHECKING:  # pragma: no cover
    from ..distributions import Sampler
    from .base import Solver

#: configuration fields that may change between a run and its resumption without changing what is
#: being trained: the length of the run, logging, where checkpoints go, and the divergence policy.
#: ``lr`` may change too (the schedule then applies it to the restored optimisers).
RESUME_FREE_FIELDS = frozenset({
    "iterations", "progress", "log_every", "device", "lr",
    "checkpoint_dir", "checkpoint_every", "checkpoint_seconds", "keep_checkpoints", "resume", "force_resume",
    "overwrite_checkpoints",
    "explode_factor", "max_restarts", "restart_lr_factor",
})


def capture_state(solver: Solver, copy_tensors: bool = True) -> dict[str, Any]:
    """The full training state of ``solver`` at :attr:`Solver.iteration` as a plain dictionary.

    Samplers and the sampling generator are those of the solver's current (or last) run. With
    ``copy_tensors`` the tensors are cloned, so the result stays valid while training goes on (the
    in-memory last-good snapshot); for writing a file right away no copy is needed.
    """
    def grab(sd: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(sd) if copy_tensors else sd

    from .. import __version__  # the package's top level imports the solvers: read it at call time

    p, q, generator = solver.samplers
    modules = solver.state_modules()
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "w2gn_version": __version__,
        "method": solver.name,
        "iteration": int(solver.iteration),
        "config": plain(dataclasses.asdict(solver.config)),
        "data": {"source": p.describe() if p is not None else None, "target": q.describe() if q is not None else None},
        "modules": {name: grab({k: v.detach() for k, v in m.state_dict().items()}) for name, m in modules.items()},
        "specs": {name: _spec(m) for name, m in modules.items()},
        "optimizers": {name: grab(o.state_dict()) for name, o in solver.optimizers().items()},
        "schedule": solver.schedule.state_dict() if solver.schedule is not None else {},
        "rng": rng_state(generator),
        "history": [dict(r) for r in solver.history],
        "loop": dict(solver.loop_state()),
        "extra": grab(solver.extra_state()),
        # samplers with a position of their own (e.g. a prefetched batch stream) continue from it on resume
        "samplers": {role: dict(s.state_dict()) for role, s in (("source", p), ("target", q))
                     if s is not None and hasattr(s, "state_dict")},
        "context": run_context(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def restore_state(solver: Solver, state: dict[str, Any], source: str = "checkpoint") -> None:
    """Load ``state`` (from :func:`capture_state` or a checkpoint file) into a solver whose networks exist.

    Raises :class:`W2GNUserError` naming ``source`` when the networks or optimisers do not match
    (another architecture or dimension).
    """
    modules, opts = solver.state_modules(), solver.optimizers()
    for kind, have, saved in (("networks", modules, state["modules"]), ("optimisers", opts, state["optimizers"])):
        if set(have) != set(saved):
            raise W2GNUserError(f"{source}: holds {kind} {sorted(saved)} but method {solver.name!r} has {sorted(have)}; "
                                "it was written by another method or with other options (ema_decay)")
    for name, m in modules.items():
        try:
            m.load_state_dict(state["modules"][name])
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            detail = next((ln.strip() for ln in first if "size mismatch" in ln or "Missing" in ln or "Unexpected" in ln),
                          first[0] if first else "")
            raise W2GNUserError(f"{source}: network {name!r} does not fit this configuration (wrong dimension or "
                                f"architecture: {detail}); resume with the options of the original run") from None
    for name, o in opts.items():
        try:
            o.load_state_dict(state["optimizers"][name])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise W2GNUserError(f"{source}: optimiser {name!r} does not fit this configuration ({exc})") from None
    solver.iteration = int(state["iteration"])
    solver.history = [dict(r) for r in state.get("history", [])]
    solver.load_loop_state(state.get("loop", {}))
    if solver.schedule is not None:
        saved = state.get("schedule") or {}
        if "scale" not in saved:  # written before the schedule was saved: the restarts imply the scale
            saved = {**saved, "scale": float(solver.config.restart_lr_factor) ** solver.restarts}
        solver.schedule.load_state_dict(saved)
    solver.load_extra_state(state.get("extra", {}))
    p, q, generator = solver.samplers
    set_rng_state(state["rng"], generator)
    saved_samplers = state.get("samplers") or {}
    for role, s in (("source", p), ("target", q)):
        if s is not None and role in saved_samplers and hasattr(s, "load_state_dict"):
            s.load_state_dict(saved_samplers[role])


def check_resumable(state: dict[str, Any], solver: Solver, p: Sampler, q: Sampler, source: str, force: bool = False) -> None:
    """Refuse (with a message) to resume a run on other data or with an incompatible configuration.

    A different method or sample shape is always refused; different data or configuration only
    unless ``force``.
    """
    if state["method"] != solver.name:
        raise W2GNUserError(f"{source}: was written by method {state['method']!r}, not {solver.name!r}; "
                            f"resume with method {state['method']!r} or use another checkpoint folder")
    for role, s in (("source", p), ("target", q)):
        saved = (state.get("data") or {}).get(role) or {}
        if saved.get("event_shape") is not None and list(saved["event_shape"]) != list(s.event_shape):
            raise W2GNUserError(f"{source}: is for {role} samples of shape {tuple(saved['event_shape'])} but the "
                                f"{role} data have shape {tuple(s.event_shape)} (wrong dimension); use the original data")
    # each rank of a batch-split run draws its own stream: another number of streams cannot continue it (a run
    # whose ranks share one stream, e.g. split by direction, continues in one process or in 2 alike)
    ranks = (state.get("extra") or {}).get("ranks") or {}
    saved_world, world = int(ranks.get("world_size", 1)), int(getattr(solver, "sampling_streams", 1))
    if saved_world != world:
        how = f"torchrun --nproc_per_node={saved_world}" if saved_world > 1 else "one process (without torchrun)"
        raise W2GNUserError(f"{source}: was written by a run of {saved_world} process(es), this one has {world}; "
                            f"resume it with {how}")
    problems = []
    for role, s in (("source", p), ("target", q)):
        saved = (state.get("data") or {}).get(role)
        now = plain_value(s.describe())
        if saved is not None and saved != now:
            diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
            problems.append(f"{role} data differ ({', '.join(f'{k}: {saved.get(k)} -> {now.get(k)}' for k in diff)})")
    now_cfg = plain(dataclasses.asdict(solver.config))
    for k in sorted(set(state["config"]) | set(now_cfg)):
        if k in RESUME_FREE_FIELDS:
            continue
        if state["config"].get(k) != now_cfg.get(k):
            problems.append(f"option {k} was {state['config'].get(k)!r}, now {now_cfg.get(k)!r}")
    if problems and not force:
        raise W2GNUserError(f"{source}: cannot resume: {'; '.join(problems)}; use the original data and options, "
                            "another checkpoint folder, or force it (--force-resume)")
    if problems:
        warnings.warn(f"resuming {source} despite: {'; '.join(problems)}", stacklevel=2)


def _spec(m: torch.nn.Module) -> dict[str, Any] | None:
    return plain_value(potential_spec(m)) if isinstance(m, ConvexPotential) else None


def plain_value(v: Any) -> Any:
    """``v`` with tuples as lists, NumPy scalars and 1-element tensors as numbers, paths as text."""
    if isinstance(v, dict):
        return {str(k): plain_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain_value(x) for x in v]
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return v.item()
    return v


def plain(d: dict[str, Any]) -> dict[str, Any]:
    """:func:`plain_value` of every value of ``d``."""
    return {k: plain_value(v) for k, v in d.items()}
