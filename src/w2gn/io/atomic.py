"""Write files so that a crash never leaves a half-written output behind.

Data goes to a temporary file in the destination folder, is flushed and fsync'ed, then renamed over
the destination (atomic on POSIX and Windows for files on one filesystem).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import W2GNUserError


def check_output_path(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Validate an output path before any work is spent: its folder exists and is writable, and the
    file does not exist unless ``overwrite``."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise W2GNUserError(f"{p}: the folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise W2GNUserError(f"{p}: the folder {parent} is not writable; choose another output path")
    if p.exists() and not overwrite:
        raise W2GNUserError(f"{p}: already exists; pass --overwrite to replace it")
    if p.is_dir():
        raise W2GNUserError(f"{p}: is a folder; give a file name")
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on error removed."""
    dest = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent if str(dest.parent) else ".")
    os.close(fd)
    # mkstemp makes the file private (0600); give the output the permissions a plain open() would
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_path, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`atomic_path`."""
    import torch

    # through a Python file object: given a path, torch writes with C++ streams, and a full disk then
    # surfaces as "RuntimeError: basic_ios::clear: iostream error" instead of ENOSPC
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)
