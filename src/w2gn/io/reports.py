"""Reports: JSON and text files written atomically, and one-line messages for the person running a job.

Used by the command line and by the applications alike, so that experiment code never imports the CLI.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .atomic import atomic_path


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON (numbers that JSON lacks, e.g. tensors' items, as floats), atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2, default=float) + "\n")


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader never sees half a file)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def say(msg: str, quiet: bool = False) -> None:
    """Print a progress message to stderr (stdout stays for results), unless ``quiet``."""
    if not quiet:
        print(msg, file=sys.stderr)
