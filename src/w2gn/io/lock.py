"""One run per output: an operating-system lock on a file beside what a run writes.

The lock is ``fcntl.flock`` on a hidden file ``.<name>.lock`` in the same folder as the guarded path
(an output file, an output folder or a checkpoint folder). The kernel releases it when the holding
process ends in any way (SIGKILL and power loss included), so no stale marker can block a later
run: a lock file left by a killed run is just reused. The holder writes its PID into the file so that
a refused run can say who holds it.

The holder deletes the lock file when it releases the lock (so finished runs leave nothing behind).
That opens a classic race -- a process that opened the old file just before it was deleted would lock
an orphaned inode -- which :func:`acquire` closes by checking, once it holds the lock, that the path
still names the very file it locked, and starting again if not.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import W2GNUserError


class LockedError(W2GNUserError):
    """Another live process holds the lock on a path this run would write."""

    def __init__(self, guarded: Path, pid: int | None) -> None:
        self.guarded = guarded
        self.pid = pid
        who = f"PID {pid}" if pid else "a process whose PID could not be read"
        super().__init__(f"{guarded}: another w2gn run ({who}) is writing here; wait for it to end, stop it, "
                         "or choose another output or --checkpoint-dir")


def lock_path(guarded: str | os.PathLike) -> Path:
    """The lock file of ``guarded``: ``.<name>.lock`` beside it (real path, so aliases share one lock)."""
    p = Path(os.path.realpath(guarded))
    return p.parent / f".{p.name}.lock"


class RunLock:
    """An exclusive, non-blocking lock on ``guarded``; :meth:`release` (or process death) frees it."""

    def __init__(self, guarded: str | os.PathLike) -> None:
        self.guarded = Path(guarded)
        self.path = lock_path(guarded)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`LockedError` naming the holder's PID."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise LockedError(self.guarded, _read_pid(self.path)) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder deleted the file between our open and our lock
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fd = fd
            return self

    def release(self) -> None:
        """Delete the lock file and free the lock (deleting first: see the module docstring)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)  # closing the last descriptor releases the flock
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(path: Path, wait: float = 0.5) -> int | None:
    # the holder writes its PID right after locking; give it a moment if we caught it in between
    deadline = time.monotonic() + wait
    while True:
        try:
            text = path.read_text().strip()
        except OSError:
            text = ""
        if text.isdigit():
            return int(text)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


@contextlib.contextmanager
def hold_locks(paths: Sequence[str | os.PathLike]) -> Iterator[list[RunLock]]:
    """Lock every path of ``paths`` whose folder exists (duplicates once), release all on exit.

    A path whose folder does not exist is skipped: the command reports that itself, and nothing can
    be written there by anyone.
    """
    seen: set[Path] = set()
    with contextlib.ExitStack() as stack:
        held = []
        for p in paths:
            lk = RunLock(p)
            if lk.path in seen or not lk.path.parent.is_dir() or not os.access(lk.path.parent, os.W_OK):
                continue
            seen.add(lk.path)
            held.append(stack.enter_context(lk))
        yield held
