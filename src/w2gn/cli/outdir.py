"""Output folders of the experiment commands (several files per run): one option name, one check."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import W2GNUserError
from ..io.reports import write_json, write_text


def add_out_dir_arg(p: argparse.ArgumentParser, default: str | None, old: tuple[str, ...] = ("-o", "--output"),
                    text: str = "folder for the outputs (created if missing)") -> None:
    """``--out-dir DIR``, the one spelling of "the folder the outputs go to" (``default=None``: required,
    checked by :func:`prepare_output_dir` or :func:`require_out_dir`); ``old`` are earlier spellings,
    still accepted but not listed in ``--help`` (deprecated)."""
    p.add_argument("--out-dir", default=default, metavar="DIR",
                   help=text if default is not None else f"{text} (required)")
    if old:
        p.add_argument(*old, dest="out_dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_run_dir_args(p: argparse.ArgumentParser, default: str) -> None:
    """``--out-dir DIR`` and ``--overwrite`` of a command that writes one run (``report.json`` and more)
    into a folder: :func:`prepare_output_dir` checks them, :func:`write_report` writes the report."""
    add_out_dir_arg(p, default)
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in OUT_DIR")


def write_report(out: Path, report: dict, table: str) -> None:
    """A run's ``OUT_DIR/report.json`` and its Markdown ``OUT_DIR/table.md``; the table is printed too."""
    write_json(out / "report.json", report)
    write_text(out / "table.md", table)
    print(table, end="")


def require_out_dir(path: str | os.PathLike | None) -> Path:
    """``Path(path)``; a one-line user error when ``--out-dir`` was not given."""
    if path is None:
        raise W2GNUserError("give the output folder with --out-dir DIR")
    return Path(path)


def prepare_output_dir(path: str | os.PathLike | None, overwrite: bool, marker: str = "report.json") -> Path:
    """Create ``path`` if needed; refuse a folder that already holds a run (``marker``) unless ``overwrite``."""
    p = require_out_dir(path)
    if p.exists() and not p.is_dir():
        raise W2GNUserError(f"{p}: exists and is not a folder; give a folder for the outputs")
    if (p / marker).exists() and not overwrite:
        raise W2GNUserError(f"{p}: already holds a run ({marker}); pass --overwrite or choose another --out-dir")
    if not p.parent.is_dir():
        raise W2GNUserError(f"{p}: the parent folder {p.parent} does not exist; create it first")
    try:
        p.mkdir(exist_ok=True)
    except OSError as exc:
        raise W2GNUserError(f"{p}: cannot create the output folder ({exc})") from exc
    if not os.access(p, os.W_OK):
        raise W2GNUserError(f"{p}: the folder is not writable; choose another --out-dir")
    return p
