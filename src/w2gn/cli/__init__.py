"""The ``w2gn`` command: one entry point, one module per subcommand.

User errors (:class:`~w2gn.errors.W2GNUserError`, and bad options) print one line
``w2gn: error: ...`` and exit with status 2; ``--debug`` shows the traceback instead. A diverged run
exits with status 3 and names the last good checkpoint.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence

from ..errors import DivergenceError, W2GNUserError, WriteFailedError
from . import benchmark, color_transfer, compare, domain_adapt, export, fit, gaussian, latent, resume, style, toy, transform

#: subcommand modules; each has ``add_parser(subparsers)``, which registers the command with
#: :func:`.common.add_command` (its help, its description = its ``run``'s docstring, ``func``)
COMMANDS = [gaussian, fit, transform, resume, compare, style, domain_adapt, latent, export, benchmark, color_transfer, toy]


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (what, and where to look), exit status 2, and whose
    help shows every option's default (:class:`~w2gn.cli.options.HelpFormatter`; subcommands inherit both)."""

    def __init__(self, *args, **kwargs) -> None:
        from .options import HelpFormatter

        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = OneLineParser(
        prog="w2gn",
        description="Wasserstein-2 Generative Networks: optimal transport maps with input-convex neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"w2gn {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ..checkpoint import set_run_context
    from .locking import command_locks

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # checkpoints record how the run was started, so that 'w2gn resume DIR' can replay it
    set_run_context(argv=argv, cwd=os.getcwd())
    # SIGTERM (a scheduler or preemption) stops the run like Ctrl-C: the last good state is saved
    previous = _catch_sigterm()
    try:
        # a second run on the same output or checkpoint folder is refused while this one runs
        with command_locks(args):
            return int(args.func(args) or 0)
    except W2GNUserError as exc:
        if args.debug:
            raise
        print(f"w2gn: error: {exc}", file=sys.stderr)
        return 2
    except DivergenceError as exc:
        if args.debug:
            raise
        where = (f"; resume it with 'w2gn resume {os.path.dirname(exc.checkpoint)} --lr <lower>'"
                 if exc.checkpoint else "")
        print(f"w2gn: error: {exc}{where}; lower --lr, raise --lambda or pass --max-restarts", file=sys.stderr)
        return 3
    except OSError as exc:  # disk full, I/O error: the output was not written (writes are atomic)
        if args.debug:
            raise
        # a WriteFailedError says itself what was lost and how to continue
        tail = "" if isinstance(exc, WriteFailedError) else "; nothing was written"
        print(f"w2gn: error: {exc}{tail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        where = getattr(exc, "checkpoint", None)
        hint = f"; last good checkpoint {where}; continue with 'w2gn resume {os.path.dirname(where)}'" if where else ""
        print(f"w2gn: interrupted{hint}", file=sys.stderr)
        return 130
    finally:
        _restore_sigterm(previous)


def _catch_sigterm() -> tuple | None:
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return None
    return (signal.signal(signal.SIGTERM, signal.default_int_handler),)


def _restore_sigterm(previous: tuple | None) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous[0] if previous[0] is not None else signal.SIG_DFL)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
