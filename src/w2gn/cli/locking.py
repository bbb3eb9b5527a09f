"""Which paths a command writes, locked for the time it runs (one run per output; RELIABILITY.md)."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator

from ..io.lock import hold_locks
from .options import default_checkpoint_dir


def written_paths(args: argparse.Namespace) -> list[str]:
    """The output file or folder of a command and, for training commands, its checkpoint folder.

    ``w2gn resume`` locks nothing itself: the command it replays does.
    """
    if getattr(args, "command", None) == "resume":
        return []
    paths = [str(v) for k in ("output", "out_dir") if (v := getattr(args, k, None))]
    if hasattr(args, "checkpoint_every") and (ck := default_checkpoint_dir(args)):
        paths.append(ck)
    return paths


@contextlib.contextmanager
def command_locks(args: argparse.Namespace) -> Iterator[None]:
    """Hold the locks of :func:`written_paths` while the command runs.

    Under ``torchrun`` only rank 0 locks: the other ranks of the same run share its outputs.
    """
    # a rank started by 'w2gn fit --processes' runs under its parent's locks (cli/processes.py)
    if os.environ.get("RANK", "0") not in ("", "0") or os.environ.get("W2GN_PARENT_HOLDS_LOCKS"):
        yield
        return
    with hold_locks(written_paths(args)):
        yield
