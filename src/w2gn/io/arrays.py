"""Read and write sample arrays: ``.npy``, ``.npz``, ``.csv``/``.txt``/``.tsv``, ``.pt``.

Rows are samples, columns coordinates. Every loader validates what it read (2-D, numeric, finite,
non-empty) and raises :class:`~w2gn.errors.W2GNUserError` naming the file and the problem.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import W2GNUserError
from .atomic import atomic_path, check_output_path
from .images import IMAGE_EXTENSIONS, load_rgb
from .stream import MAP_ABOVE_BYTES, NpyRows, iter_text_blocks

SAMPLE_EXTENSIONS = (".npy", ".npz", ".csv", ".txt", ".tsv", ".pt")


def _read_text(p: Path, log: Callable[[str], None] | None = None) -> np.ndarray:
    return np.concatenate(list(iter_text_blocks(p, log=log)), axis=0)


def check_sample_file(p: Path) -> str:
    """The checks every sample file gets before it is read (exists, a file, known extension, readable,
    not empty), as :class:`W2GNUserError`; returns its lower-case extension."""
    if not p.exists():
        raise W2GNUserError(f"{p}: no such file")
    if p.is_dir():
        raise W2GNUserError(f"{p}: is a folder, expected a file of samples")
    ext = p.suffix.lower()
    if ext not in SAMPLE_EXTENSIONS + IMAGE_EXTENSIONS:
        raise W2GNUserError(f"{p}: unknown file extension {ext!r}; use one of {', '.join(SAMPLE_EXTENSIONS)} "
                            f"(samples) or {', '.join(IMAGE_EXTENSIONS)} (an image's pixels as RGB rows)")
    if not os.access(p, os.R_OK):
        raise W2GNUserError(f"{p}: cannot be read (permission denied); check the file's permissions")
    if p.stat().st_size == 0:
        raise W2GNUserError(f"{p}: the file is empty")
    return ext


def open_samples(path: str | os.PathLike, name: str | None = None, digest: bool = False,
                 map_above: int = MAP_ABOVE_BYTES, log: Callable[[str], None] | None = None) -> np.ndarray | NpyRows:
    """Samples for a command that must not hold big files in memory.

    A 2-D numeric ``.npy`` file larger than ``map_above`` bytes comes back as
    :class:`~w2gn.io.stream.NpyRows` (mapped, not read), after a check of every row in blocks (finite,
    non-empty); with ``digest`` its fingerprint is computed in the same pass (``.digest``). Any other
    file is loaded by :func:`load_samples`.
    """
    p = Path(path)
    label = name or str(p)
    if check_sample_file(p) == ".npy" and p.stat().st_size > map_above:
        rows = NpyRows.open(p)
        if rows is not None:
            try:
                rows.digest = rows.scan(label, digest=digest)
            except BaseException:
                rows.close()
                raise
            return rows
    return load_samples(p, name, log=log)


def load_samples(path: str | os.PathLike, name: str | None = None, log: Callable[[str], None] | None = None
                 ) -> np.ndarray:
    """Load a ``(N, D)`` float array of samples from a file into memory, validated (see
    :func:`open_samples` for files larger than memory).

    A text file's first line is taken as a header and skipped only when none of its cells is a
    number; ``log`` (e.g. the command's message printer) is then told so in one line.

    ``.npz`` files must hold exactly one array (or one named ``samples``); ``.pt`` files a tensor;
    image files (:data:`~w2gn.io.images.IMAGE_EXTENSIONS`) give their pixels as ``(H*W, 3)`` RGB rows
    in ``[0, 1]`` (:func:`~w2gn.io.images.load_rgb`).
    """
    p = Path(path)
    label = name or str(p)
    ext = check_sample_file(p)
    try:
        if ext in IMAGE_EXTENSIONS:
            arr = load_rgb(p).reshape(-1, 3)
        elif ext == ".npy":
            arr = np.load(p, allow_pickle=False)
        elif ext == ".npz":
            with np.load(p, allow_pickle=False) as z:
                keys = list(z.keys())
                if "samples" in keys:
                    arr = z["samples"]
                elif len(keys) == 1:
                    arr = z[keys[0]]
                else:
                    raise W2GNUserError(f"{p}: holds arrays {keys}; keep one, or name it 'samples'")
        elif ext == ".pt":
            import torch

            obj = torch.load(p, map_location="cpu", weights_only=True)
            if not isinstance(obj, torch.Tensor):
                raise W2GNUserError(f"{p}: expected a saved tensor, found {type(obj).__name__}")
            arr = obj.detach().numpy()
        else:
            arr = _read_text(p, log)
    except W2GNUserError:
        raise
    except PermissionError as exc:
        raise W2GNUserError(f"{p}: cannot be read (permission denied)") from exc
    except Exception as exc:
        raise W2GNUserError(f"{p}: cannot be read as {ext} ({type(exc).__name__}: {exc})") from exc
    from ..distributions.data import validate_samples

    return validate_samples(arr, label).numpy()


def save_samples(path: str | os.PathLike, samples, overwrite: bool = False) -> Path:
    """Write a ``(N, D)`` array to ``path`` (format by extension), atomically."""
    p = check_output_path(path, overwrite)
    ext = p.suffix.lower()
    if ext not in SAMPLE_EXTENSIONS:
        raise W2GNUserError(f"{p}: unknown file extension {ext!r}; use one of {', '.join(SAMPLE_EXTENSIONS)}")
    arr = np.asarray(samples.detach().cpu().numpy() if hasattr(samples, "detach") else samples)
    with atomic_path(p) as tmp:
        if ext == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, arr)
        elif ext == ".npz":
            with open(tmp, "wb") as fh:
                np.savez(fh, samples=arr)
        elif ext == ".pt":
            import torch

            with open(tmp, "wb") as fh:  # a Python file: a full disk is then an OSError (see atomic_torch_save)
                torch.save(torch.as_tensor(arr), fh)
        else:
            np.savetxt(tmp, arr, delimiter="\t" if ext == ".tsv" else ",", fmt="%.9g")
    return p
