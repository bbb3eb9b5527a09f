"""``w2gn resume DIR [OPTIONS]``: continue an interrupted or diverged run from its newest valid checkpoint."""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

from ..checkpoint import load_latest
from ..errors import W2GNUserError
from .common import add_command, say

#: options of the recorded command line that ``resume`` replaces (with how many values they take)
_REPLACED = {"--resume": 0, "--no-checkpoints": 0, "--checkpoint-dir": 1}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "resume", "continue a run from its newest valid checkpoint", run)
    p.add_argument("checkpoint_dir", metavar="DIR", help="checkpoint folder of the run (e.g. OUTPUT.ckpt)")
    p.add_argument("options", nargs=argparse.REMAINDER, help="options to add or change for the resumed run")


def replay_argv(recorded: list[str], checkpoint_dir: str, extra: list[str]) -> list[str]:
    """The recorded command line without its checkpoint-folder/resume options, pointed at ``checkpoint_dir``."""
    out: list[str] = []
    skip = 0
    for tok in recorded:
        if skip:
            skip -= 1
            continue
        name = tok.split("=", 1)[0]
        if name in _REPLACED:
            skip = _REPLACED[name] if "=" not in tok else 0
            continue
        out.append(tok)
    return [*out, "--checkpoint-dir", checkpoint_dir, "--resume", *extra]


def run(args: argparse.Namespace) -> int:
    """Continue the run whose checkpoints are in DIR: the command line recorded in the newest valid checkpoint is
    replayed with --resume, from its original working folder. OPTIONS after DIR are appended and win over the
    recorded ones, e.g. 'w2gn resume map.pt.ckpt --iterations 20000 --lr 1e-4 --overwrite'.
    """
    from . import main

    folder = Path(args.checkpoint_dir)
    if not folder.is_dir():
        raise W2GNUserError(f"{folder}: no such checkpoint folder")
    found = load_latest(folder)
    if found is None:
        raise W2GNUserError(f"{folder}: holds no checkpoint (ckpt-*.ckpt); nothing to resume")
    path, state = found
    context = state.get("context") or {}
    recorded = context.get("argv")
    if not recorded or recorded[0] == "resume":
        raise W2GNUserError(f"{path}: was written by a Python program, not the w2gn command; resume it from Python "
                            "with the same solver options and resume=True")
    argv = replay_argv([str(t) for t in recorded], str(folder.resolve()), list(args.options))
    if args.debug and "--debug" not in argv:
        argv = ["--debug", *argv]
    say(f"resuming from {path} (iteration {state['iteration']}): w2gn {' '.join(argv)}", False)
    cwd = context.get("cwd")
    with _working_folder(cwd if cwd and os.path.isdir(cwd) else None):
        return main(argv)


@contextlib.contextmanager
def _working_folder(path: str | None):
    # the recorded command's relative paths (data, output) are relative to where it was started
    before = os.getcwd()
    if path:
        os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)
