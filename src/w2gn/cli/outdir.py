"""Output folders of the experiment commands (several files per run)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import W2GNUserError


def prepare_output_dir(path: str | os.PathLike, overwrite: bool, marker: str = "report.json") -> Path:
    """Create ``path`` if needed; refuse a folder that already holds a run (``marker``) unless ``overwrite``."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise W2GNUserError(f"{p}: exists and is not a folder; give a folder for the outputs")
    if (p / marker).exists() and not overwrite:
        raise W2GNUserError(f"{p}: already holds a run ({marker}); pass --overwrite or choose another --output folder")
    if not p.parent.is_dir():
        raise W2GNUserError(f"{p}: the parent folder {p.parent} does not exist; create it first")
    try:
        p.mkdir(exist_ok=True)
    except OSError as exc:
        raise W2GNUserError(f"{p}: cannot create the output folder ({exc})") from exc
    if not os.access(p, os.W_OK):
        raise W2GNUserError(f"{p}: the folder is not writable; choose another --output folder")
    return p
