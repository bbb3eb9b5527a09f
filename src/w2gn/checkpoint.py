"""Training checkpoints: atomic, self-checking files from which a run resumes bit-identically.

This module only reads and writes the file format. What a checkpoint holds is a solver's
:meth:`~w2gn.solvers.Solver.state_dict` (built in :mod:`w2gn.solvers.state`): the weights of every
network, the state of every optimiser and of the learning-rate schedule, the iteration, every
random-number-generator state, the configuration, the identity of the data, the training history
and the loop's own counters.

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

import hashlib
import io
import os
import re
import shlex
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from .errors import W2GNUserError, WriteFailedError
from .io.atomic import atomic_path
from .rng import rng_state, set_rng_state  # noqa: F401  (re-exported: they lived here before w2gn.rng)

FORMAT = "w2gn-checkpoint"
FORMAT_VERSION = 1
MAGIC = b"W2GN-CKPT"
SUFFIX = ".ckpt"
_NAME = re.compile(r"^ckpt-(\d+)\.ckpt$")
_REQUIRED = ("format", "version", "method", "iteration", "config", "data", "modules", "optimizers", "rng")

#: where the command line records how a run was started (``w2gn resume`` replays it); empty for
#: runs started from Python
_context: dict[str, Any] = {}


def set_run_context(**values: Any) -> None:
    """Record plain-data facts about how this process was started (``argv``, ``cwd``) in checkpoints."""
    _context.clear()
    _context.update(values)


def run_context() -> dict[str, Any]:
    return dict(_context)


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
