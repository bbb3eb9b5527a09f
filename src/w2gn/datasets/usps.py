"""USPS handwritten digits (16x16, 7291 train / 2007 test) in their usual file formats.

* HDF5 (the Kaggle ``usps.h5``): datasets ``train/data`` ``(N, 256)`` in ``[0, 1]`` and ``train/target``
  (digits 0..9), the same under ``test/``. Needs ``h5py`` (the ``data`` extra).
* ESL ``zip.train`` / ``zip.test`` (optionally ``.gz``): one image per line, the digit then 256
  values in ``[-1, 1]``, separated by blanks.
* LIBSVM ``usps`` / ``usps.t`` (optionally ``.bz2``): ``label index:value ...`` with labels 1..10
  (digit + 1) and values in ``[-1, 1]``; absent indices are -1 (background).
"""

from __future__ import annotations

import bz2
import gzip
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import W2GNUserError
from .imageset import ImageSet, check_pixels
from .paths import find_in_shared


def find_usps() -> Path | None:
    """``usps/usps.h5`` in the shared data folders (see :func:`~w2gn.datasets.paths.shared_data_dirs`)."""
    return find_in_shared("usps/usps.h5", "usps.h5")


def _to_set(x: np.ndarray, y: np.ndarray, name: str) -> ImageSet:
    check_pixels(x, name)
    if x.ndim != 2 or x.shape[1] != 256:
        raise W2GNUserError(f"{name}: expected 256 pixels per image (16x16), got shape {x.shape}")
    if x.min() < -1e-6 or x.max() > 1 + 1e-6:
        raise W2GNUserError(f"{name}: pixel values must lie in [0, 1] (or [-1, 1] for the ESL/LIBSVM text formats)")
    if y.shape[0] != x.shape[0]:
        raise W2GNUserError(f"{name}: {y.shape[0]} labels for {x.shape[0]} images")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise W2GNUserError(f"{name}: labels must be digits 0..9")
    imgs = torch.from_numpy(np.clip(x, 0, 1).astype(np.float32).reshape(-1, 1, 16, 16))
    return ImageSet(imgs, torch.from_numpy(y.astype(np.int64)), name)


def _load_h5(p: Path, split: str) -> ImageSet:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise W2GNUserError(f"{p}: reading USPS HDF5 needs h5py: pip install 'w2gn[data]'") from exc
    try:
        with h5py.File(p, "r") as f:
            if f"{split}/data" not in f or f"{split}/target" not in f:
                raise W2GNUserError(f"{p}: no '{split}/data' and '{split}/target' datasets; not the usual usps.h5 layout")
            x = np.asarray(f[f"{split}/data"][:], dtype=np.float64)
            y = np.asarray(f[f"{split}/target"][:])
    except W2GNUserError:
        raise
    except OSError as exc:
        raise W2GNUserError(f"{p}: cannot be read as HDF5 ({exc})") from exc
    return _to_set(x, y.reshape(-1), f"USPS {split} ({p.name})")


def _text_lines(p: Path) -> list[str]:
    opener = gzip.open if p.suffix == ".gz" else bz2.open if p.suffix == ".bz2" else open
    try:
        with opener(p, "rt", encoding="utf-8", errors="replace") as fh:
            return [ln.strip() for ln in fh if ln.strip()]
    except (OSError, EOFError) as exc:
        raise W2GNUserError(f"{p}: cannot be read ({exc})") from exc


def _load_esl(p: Path, lines: list[str]) -> ImageSet:
    try:
        a = np.asarray([ln.split() for ln in lines], dtype=np.float64)
    except ValueError:
        raise W2GNUserError(f"{p}: every line must hold a digit and 256 numbers (ESL zip format)") from None
    if a.shape[1] != 257:
        raise W2GNUserError(f"{p}: lines hold {a.shape[1]} numbers; the ESL zip format has a digit and 256 pixels")
    y = a[:, 0]
    if not np.all(y == np.round(y)):
        raise W2GNUserError(f"{p}: the first number of each line must be the digit 0..9")
    return _to_set((a[:, 1:] + 1) / 2, y.astype(np.int64), f"USPS ({p.name})")


def _load_libsvm(p: Path, lines: list[str]) -> ImageSet:
    x = -np.ones((len(lines), 256))
    y = np.empty(len(lines), dtype=np.int64)
    for i, ln in enumerate(lines):
        cells = ln.split()
        try:
            y[i] = int(float(cells[0])) - 1  # LIBSVM's usps labels are digit + 1
            for c in cells[1:]:
                k, v = c.split(":")
                x[i, int(k) - 1] = float(v)
        except (ValueError, IndexError):
            raise W2GNUserError(f"{p}: line {i + 1} is not 'label index:value ...' (LIBSVM format)") from None
    return _to_set((x + 1) / 2, y, f"USPS ({p.name})")


def load_usps(path: str | os.PathLike | None = None, split: str = "train") -> ImageSet:
    """Load USPS ``split`` (``"train"``/``"test"``) as 16x16 images in ``[0, 1]`` with labels 0..9.

    ``path``: a ``usps.h5`` file, an ESL ``zip.train[.gz]``/``zip.test[.gz]`` file, a LIBSVM
    ``usps[.bz2]``/``usps.t[.bz2]`` file, or a folder holding one of these (the file for ``split`` is
    picked by name). ``None`` uses :func:`find_usps`. For text files the split is the file itself.
    """
    if split not in ("train", "test"):
        raise W2GNUserError(f"unknown USPS split {split!r}; use 'train' or 'test'")
    p = Path(path) if path is not None else find_usps()
    if p is None:
        raise W2GNUserError("USPS not found: pass the path of usps.h5 (or zip.train / LIBSVM usps files)")
    if p.is_dir():
        per_split = {"train": ["zip.train", "zip.train.gz", "usps", "usps.bz2"],
                     "test": ["zip.test", "zip.test.gz", "usps.t", "usps.t.bz2"]}
        names = ["usps.h5"] + per_split[split]
        found = next((p / n for n in names if (p / n).is_file()), None)
        if found is None:
            raise W2GNUserError(f"{p}: holds none of the USPS files {', '.join(names)}")
        p = found
    if not p.is_file():
        raise W2GNUserError(f"{p}: no such USPS file")
    with open(p, "rb") as fh:
        magic = fh.read(8)
    if magic.startswith(b"\x89HDF"):
        return _load_h5(p, split)
    lines = _text_lines(p)
    if not lines:
        raise W2GNUserError(f"{p}: the file is empty")
    if ":" in lines[0]:
        return _load_libsvm(p, lines)
    return _load_esl(p, lines)
