"""Where to look for data sets on disk when the user names none."""

from __future__ import annotations

import os
from pathlib import Path


def shared_data_dirs() -> list[Path]:
    """Candidate data folders, in order: ``$W2GN_DATA``, ``./shared/data``, ``../shared/data`` (relative to
    the working directory), and ``shared/data`` beside the source checkout holding this package."""
    out: list[Path] = []
    env = os.environ.get("W2GN_DATA")
    if env:
        out.append(Path(env))
    out += [Path.cwd() / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    here = Path(__file__).resolve()
    if len(here.parents) > 4:  # src/w2gn/datasets/paths.py in a checkout -> <checkout>/../shared/data
        out.append(here.parents[4] / "shared" / "data")
    seen, uniq = set(), []
    for p in out:
        key = str(p.resolve()) if p.exists() else str(p)
        if key not in seen:
            seen.add(key)
            uniq.append(p)
    return uniq


def find_in_shared(*relative: str) -> Path | None:
    """The first existing ``<data dir>/<relative>`` among :func:`shared_data_dirs`, or ``None``."""
    for d in shared_data_dirs():
        for rel in relative:
            p = d / rel
            if p.exists():
                return p
    return None
