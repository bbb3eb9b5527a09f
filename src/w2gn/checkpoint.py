"""Training checkpoints: atomic, self-checking files from which a run resumes bit-identically.

A checkpoint holds everything the training loop's future depends on: the weights of every network
(:meth:`Solver.modules`), the state of every optimiser (:meth:`Solver.optimizers`), the iteration,
every random-number-generator state (the loop's sampling ``torch.Generator``, torch CPU and CUDA,
NumPy, Python), the solver's configuration, the identity of the data (``Sampler.describe()``:
shapes and a SHA-256 of arrays, or a sampler's parameters), the training history and the loop's own
counters (divergence reference, restarts).

File layout (one file per checkpoint, ``ckpt-<iteration>.ckpt``)::

    W2GN-CKPT <format version> <payload bytes> <sha256 of payload>\\n
    <payload: torch.save of the state dictionary>

The header makes every kind of damage recognisable before anything is unpickled: a foreign file
has no magic, a truncated file has fewer payload bytes than announced, a corrupted one fails the
checksum. The payload is read with ``torch.load(weights_only=True)`` (no code execution).
Files are written to a temporary name in the same folder, flushed, fsync'ed and renamed
(:func:`w2gn.io.atomic.atomic_path`), and only the newest ``keep`` are kept.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import os
import random
import re
import shlex
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .errors import W2GNUserError, WriteFailedError
from .io.atomic import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from .distributions import Sampler
    from .solvers.base import Solver

FORMAT = "w2gn-checkpoint"
FORMAT_VERSION = 1
MAGIC = b"W2GN-CKPT"
SUFFIX = ".ckpt"
_NAME = re.compile(r"^ckpt-(\d+)\.ckpt$")
_REQUIRED = ("format", "version", "method", "iteration", "config", "data", "modules", "optimizers", "rng")

#: configuration fields that may change between a run and its resumption without changing what is
#: being trained: the length of the run, logging, where checkpoints go, and the divergence policy.
#: ``lr`` may change too (it is then applied to the restored optimisers).
RESUME_FREE_FIELDS = frozenset({
    "iterations", "progress", "log_every", "device", "lr",
    "checkpoint_dir", "checkpoint_every", "checkpoint_seconds", "keep_checkpoints", "resume", "force_resume",
    "overwrite_checkpoints",
    "explode_factor", "max_restarts", "restart_lr_factor",
})

#: where the command line records how a run was started (``w2gn resume`` replays it); empty for
#: runs started from Python
_context: dict[str, Any] = {}


def set_run_context(**values: Any) -> None:
    """Record plain-data facts about how this process was started (``argv``, ``cwd``) in checkpoints."""
    _context.clear()
    _context.update(values)


def run_context() -> dict[str, Any]:
    return dict(_context)


# ----------------------------------------------------------------------------------- RNG states
def rng_state(generator: torch.Generator | None) -> dict[str, Any]:
    """Every RNG state the training loop may touch, as plain data and tensors."""
    np_state = np.random.get_state(legacy=False)
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch_cpu": torch.get_rng_state(),
        "numpy": {"bit_generator": np_state["bit_generator"], "key": np_state["state"]["key"].tolist(),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "python": [py_version, list(py_internal), py_gauss],
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
    }
    if generator is not None:
        state["generator"] = generator.get_state()
        state["generator_device"] = str(generator.device)
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None) -> None:
    """Restore what :func:`rng_state` captured (the sampling generator included)."""
    torch.set_rng_state(state["torch_cpu"])
    n = state["numpy"]
    np.random.set_state({"bit_generator": n["bit_generator"],
                         "state": {"key": np.asarray(n["key"], dtype=np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    if state.get("cuda") and torch.cuda.is_available():
        # a run resumed on a machine with fewer GPUs restores the ones it has
        for i, s in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s, i)
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


# ------------------------------------------------------------------------- solver state <-> dict
def capture(solver: Solver, generator: torch.Generator | None, p: Sampler | None = None,
            q: Sampler | None = None, copy_tensors: bool = True) -> dict[str, Any]:
    """The full training state of ``solver`` at :attr:`Solver.iteration` as a plain dictionary.

    With ``copy_tensors`` the tensors are cloned, so the result stays valid while training goes on
    (the in-memory last-good snapshot); for writing a file right away no copy is needed.
    """
    def grab(sd: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(sd) if copy_tensors else sd

    from . import __version__

    modules = solver.modules()
    state = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "w2gn_version": __version__,
        "method": solver.name,
        "iteration": int(solver.iteration),
        "config": _plain(dataclasses.asdict(solver.config)),
        "data": {"source": p.describe() if p is not None else None, "target": q.describe() if q is not None else None},
        "modules": {name: grab({k: v.detach() for k, v in m.state_dict().items()}) for name, m in modules.items()},
        "specs": {name: _spec(m) for name, m in modules.items()},
        "optimizers": {name: grab(o.state_dict()) for name, o in solver.optimizers().items()},
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
    return state


def restore(solver: Solver, state: dict[str, Any], generator: torch.Generator | None, source: str = "checkpoint") -> None:
    """Load ``state`` (from :func:`capture` or :func:`load`) into a solver whose networks exist.

    Raises :class:`W2GNUserError` naming ``source`` when the networks or optimisers do not match
    (another architecture or dimension).
    """
    modules, opts = solver.modules(), solver.optimizers()
    for kind, have, saved in (("networks", modules, state["modules"]), ("optimisers", opts, state["optimizers"])):
        if set(have) != set(saved):
            raise W2GNUserError(f"{source}: holds {kind} {sorted(saved)} but method {solver.name!r} has {sorted(have)}; "
                                "it was written by another method")
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
    solver.load_extra_state(state.get("extra", {}))
    set_rng_state(state["rng"], generator)


def restore_samplers(state: dict[str, Any], p: Sampler, q: Sampler) -> None:
    """Put samplers that keep a position (``state_dict``/``load_state_dict``, e.g.
    :class:`~w2gn.distributions.images.PrefetchSampler`) back where :func:`capture` found them."""
    saved = state.get("samplers") or {}
    for role, s in (("source", p), ("target", q)):
        if role in saved and hasattr(s, "load_state_dict"):
            s.load_state_dict(saved[role])


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
    # each rank of a multi-process run draws its own stream: another number of processes cannot continue it
    ranks = (state.get("extra") or {}).get("ranks") or {}
    saved_world, world = int(ranks.get("world_size", 1)), int(getattr(getattr(solver, "context", None), "world_size", 1))
    if saved_world != world:
        how = f"torchrun --nproc_per_node={saved_world}" if saved_world > 1 else "one process (without torchrun)"
        raise W2GNUserError(f"{source}: was written by a run of {saved_world} process(es), this one has {world}; "
                            f"resume it with {how}")
    problems = []
    for role, s in (("source", p), ("target", q)):
        saved = (state.get("data") or {}).get(role)
        now = _plain_value(s.describe())
        if saved is not None and saved != now:
            diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
            problems.append(f"{role} data differ ({', '.join(f'{k}: {saved.get(k)} -> {now.get(k)}' for k in diff)})")
    now_cfg = _plain(dataclasses.asdict(solver.config))
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


# ---------------------------------------------------------------------------------- file format
def save(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename) in the checkpoint format."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    header = b"%s %d %d %s\n" % (MAGIC, FORMAT_VERSION, len(payload), hashlib.sha256(payload).hexdigest().encode())
    dest = Path(path)
    with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        fh.write(header)
        fh.write(payload)
    return dest


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and verify a checkpoint; :class:`W2GNUserError` says which file and why it is unusable."""
    p = Path(path)
    if not p.is_file():
        raise W2GNUserError(f"{p}: no such checkpoint file")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise W2GNUserError(f"{p}: cannot be read ({exc.strerror or exc})") from exc
    if not raw:
        raise W2GNUserError(f"{p}: is empty (0 bytes), not a usable checkpoint; delete it")
    if not raw.startswith(MAGIC):
        kind = "a PyTorch/zip file (a saved map?)" if raw[:2] == b"PK" else "a foreign file"
        raise W2GNUserError(f"{p}: is not a w2gn checkpoint ({kind}: no {MAGIC.decode()} header)")
    end = raw.find(b"\n", 0, 256)
    fields = raw[:end].split() if end > 0 else []
    if len(fields) != 4 or not fields[1].isdigit() or not fields[2].isdigit():
        raise W2GNUserError(f"{p}: damaged checkpoint header; the file is truncated or corrupted")
    version, size, digest = int(fields[1]), int(fields[2]), fields[3].decode(errors="replace")
    if version > FORMAT_VERSION:
        raise W2GNUserError(f"{p}: written by a newer w2gn (checkpoint format {version} > {FORMAT_VERSION}); upgrade w2gn")
    payload = raw[end + 1:]
    if len(payload) < size:
        raise W2GNUserError(f"{p}: truncated checkpoint ({len(payload)} of {size} payload bytes; the write or a "
                            "copy was interrupted)")
    if len(payload) > size or hashlib.sha256(payload).hexdigest() != digest:
        raise W2GNUserError(f"{p}: corrupted checkpoint (checksum mismatch); delete it")
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as exc:
        raise W2GNUserError(f"{p}: checkpoint payload cannot be decoded ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise W2GNUserError(f"{p}: is not a w2gn checkpoint (wrong format field)")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise W2GNUserError(f"{p}: incomplete checkpoint (missing {', '.join(missing)})")
    return state


def checkpoint_path(folder: str | os.PathLike, iteration: int) -> Path:
    return Path(folder) / f"ckpt-{int(iteration):09d}{SUFFIX}"


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Checkpoint files in ``folder``, oldest (lowest iteration) first."""
    d = Path(folder)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), f) for f in d.iterdir() if (m := _NAME.match(f.name)) and f.is_file()]
    return [f for _, f in sorted(found)]


def load_latest(folder: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in ``folder`` that loads, with its path; ``None`` if the folder has none.

    Damaged newer files are skipped with a warning; if every file is damaged the error lists why.
    """
    d = Path(folder)
    if d.exists() and not d.is_dir():
        raise W2GNUserError(f"{d}: is a file, not a checkpoint folder")
    errors = []
    for f in reversed(list_checkpoints(d)):
        try:
            state = load(f, map_location)
        except W2GNUserError as exc:
            errors.append(str(exc))
            continue
        for e in errors:
            warnings.warn(f"skipped {e}", stacklevel=2)
        return f, state
    if errors:
        raise W2GNUserError(f"{d}: no usable checkpoint: {' | '.join(errors)}")
    return None


class CheckpointWriter:
    """Writes the checkpoints of one run into ``folder``, keeping the newest ``keep``.

    ``every``: write when the iteration is a multiple of it (0 = use ``seconds``); ``seconds``: write
    when that much wall time has passed since the last one (0 = never by time).
    """

    def __init__(self, folder: str | os.PathLike, keep: int = 3, every: int = 0, seconds: float = 0.0) -> None:
        self.folder = Path(folder)
        self.keep = max(1, int(keep))
        self.every = int(every)
        self.seconds = float(seconds)
        self.last_path: Path | None = None
        self.last_iteration: int | None = None
        self.last_time = time.monotonic()
        self.written = 0
        if self.folder.exists() and not self.folder.is_dir():
            raise W2GNUserError(f"{self.folder}: is a file; --checkpoint-dir must be a folder")
        parent = self.folder.parent if str(self.folder.parent) else Path(".")
        if not self.folder.exists() and not parent.is_dir():
            raise W2GNUserError(f"{self.folder}: its parent folder {parent} does not exist; create it first")
        probe = self.folder if self.folder.exists() else parent
        if not os.access(probe, os.W_OK):
            raise W2GNUserError(f"{self.folder}: checkpoint folder is not writable; choose another --checkpoint-dir")
        existing = list_checkpoints(self.folder)
        if existing:
            self.last_path = existing[-1]

    def start_fresh(self, overwrite: bool = False) -> None:
        """Before a run that does not resume: refuse a folder holding another run's checkpoints (a later
        resume would pick them up), or delete them with ``overwrite``."""
        old = list_checkpoints(self.folder)
        if old and not overwrite:
            raise W2GNUserError(f"{self.folder}: holds checkpoints of an earlier run (newest {old[-1].name}); pass "
                                "--resume to continue it, --overwrite to replace it, or choose another --checkpoint-dir")
        for f in [*old, *self.folder.glob("ckpt-*.ckpt.diverged")] if old or self.folder.is_dir() else []:
            f.unlink(missing_ok=True)
        self.last_path = self.last_iteration = None

    def due(self, iteration: int) -> bool:
        if self.every > 0:
            return iteration % self.every == 0
        return self.seconds > 0 and time.monotonic() - self.last_time >= self.seconds

    def write(self, state: dict[str, Any]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._clean_temporaries()
        target = checkpoint_path(self.folder, state["iteration"])
        try:
            path = save(state, target)
        except OSError as exc:  # disk full, I/O error: save() removed its temporary file
            last = self.last_path if self.last_path is not None and self.last_path.is_file() else None
            raise WriteFailedError("checkpoint", target, exc, str(last) if last else None,
                                   self.resume_hint()) from exc
        self.last_path, self.last_iteration = path, int(state["iteration"])
        self.last_time = time.monotonic()
        self.written += 1
        for old in list_checkpoints(self.folder)[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def resume_hint(self) -> str:
        """How to continue this run from its folder: the ``w2gn resume`` command line for a run started
        from the command line, the solver options for one started from Python."""
        if run_context().get("argv"):
            return f"'w2gn resume {shlex.quote(str(self.folder))}'"
        return f"resume=True, checkpoint_dir={str(self.folder)!r}"

    def discard_from(self, iteration: int) -> list[Path]:
        """Rename checkpoints at ``iteration`` or later to ``*.ckpt.diverged`` (kept for inspection, never
        resumed from) after a divergence detected at that iteration; returns the renamed files."""
        moved = []
        for f in list_checkpoints(self.folder):
            if int(_NAME.match(f.name).group(1)) >= iteration:
                target = f.with_name(f.name + ".diverged")
                os.replace(f, target)
                moved.append(target)
        remaining = list_checkpoints(self.folder)
        self.last_path = remaining[-1] if remaining else None
        self.last_iteration = int(_NAME.match(remaining[-1].name).group(1)) if remaining else None
        return moved

    def _clean_temporaries(self) -> None:
        # a process killed while writing leaves its hidden temporary file; nothing else reads them
        for f in self.folder.glob(".ckpt-*.tmp"):
            f.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------- helpers
def _spec(m: torch.nn.Module) -> dict[str, Any] | None:
    from .networks import ConvexPotential, potential_spec

    return _plain_value(potential_spec(m)) if isinstance(m, ConvexPotential) else None


def _plain_value(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain_value(x) for x in v]
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return v.item()
    return v


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain_value(v) for k, v in d.items()}
