"""The ``w2gn`` command: one entry point, one module per subcommand.

User errors (:class:`~w2gn.errors.W2GNUserError`) print one line ``w2gn: error: ...`` and exit with
status 2; ``--debug`` shows the traceback instead. A diverged run exits with status 3.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import DivergenceError, W2GNUserError
from . import color_transfer, fit, gaussian, toy, transform

#: subcommand modules; each has ``add_parser(subparsers)`` that sets ``func``
COMMANDS = [gaussian, fit, transform, color_transfer, toy]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except W2GNUserError as exc:
        if args.debug:
            raise
        print(f"w2gn: error: {exc}", file=sys.stderr)
        return 2
    except DivergenceError as exc:
        if args.debug:
            raise
        print(f"w2gn: error: {exc}; lower --lr or raise --lambda", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("w2gn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
