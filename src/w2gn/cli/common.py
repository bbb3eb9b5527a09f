"""Shared pieces of the command-line interface: registering a subcommand, validated option types and
output (option groups: :mod:`.options`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from ..io.reports import say, write_json, write_text  # noqa: F401  (the commands import them from here)

N = TypeVar("N", int, float)


def add_command(sub: argparse._SubParsersAction, name: str, help: str,
                run: Callable[[argparse.Namespace], int] | None, description: str | None = None,
                epilog: str | None = None) -> argparse.ArgumentParser:
    """Register the subcommand ``name`` and return its parser (the command adds its options to it).

    ``help`` is the command's line in ``w2gn --help``; ``run(args)`` is what it does (``args.func``);
    ``description`` heads ``w2gn NAME --help`` and is by default ``run``'s docstring
    (:func:`doc_paragraph`), so that the reader of the code and the user read one text. The parser is of
    the top-level parser's class (:class:`~w2gn.cli.OneLineParser`): one-line errors, every option's
    default shown.
    """
    if description is None:
        description = doc_paragraph(run) or help  # no docstrings under python -OO: the one-line help stands in
    p = sub.add_parser(name, help=help, description=description, epilog=epilog)
    if run is not None:
        p.set_defaults(func=run)
    return p


def doc_paragraph(fn: Callable | None) -> str:
    """``fn``'s docstring as one paragraph (white space folded; ``""`` if it has none)."""
    return " ".join((getattr(fn, "__doc__", None) or "").split()) if fn is not None else ""


def _number(convert: Callable[[str], N], accept: Callable[[N], bool], what: str,
            name: str) -> Callable[[str], N]:
    """An option type: ``convert(text)``, refused with ``expected <what>, got ...`` unless ``accept``-ed."""

    def parse(text: str) -> N:
        try:
            v = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not accept(v):
            raise argparse.ArgumentTypeError(f"expected {what}, got {v}")
        return v

    parse.__name__ = parse.__qualname__ = name
    return parse


positive_int = _number(int, lambda v: v > 0, "a positive integer", "positive_int")
nonneg_int = _number(int, lambda v: v >= 0, "a non-negative integer", "nonneg_int")
positive_float = _number(float, lambda v: v > 0, "a positive number", "positive_float")
nonneg_float = _number(float, lambda v: v >= 0, "a non-negative number", "nonneg_float")
unit_interval = _number(float, lambda v: 0 < v < 1, "a number in (0, 1)", "unit_interval")


def int_list(text: str) -> list[int]:
    try:
        vals = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals or min(vals) <= 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return vals
