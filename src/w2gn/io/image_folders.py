"""Image collections: find image files in folders, decode many to ``uint8`` tensors, write them back atomically.

Single photos as integer or float RGB arrays (with mode conversions) are :mod:`w2gn.io.images`.

Pixel convention of the whole library for images: a float tensor ``(C, H, W)`` with values in
``[-1, 1]`` (``u8 / 127.5 - 1``); :func:`to_unit` and :func:`to_uint8` convert.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import W2GNUserError
from .atomic import atomic_path
from .images import IMAGE_EXTENSIONS

# PIL modes -> number of channels we decode them to (alpha is dropped: transport acts on colours)
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def is_image_file(path: str | os.PathLike) -> bool:
    """True if ``path``'s name ends with one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name.

    Hidden files and files with other endings (``SOURCE.md``, ``MANIFEST.txt``, ...) are skipped.
    Raises :class:`W2GNUserError` if ``folder`` is not a folder or holds no image file.
    """
    d = Path(folder)
    if not d.is_dir():
        raise W2GNUserError(f"{d}: is not a folder; give a folder of images (.jpg, .png, ...)")
    files = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if is_image_file(p)]
    if not images:
        other = f"; it holds {len(files)} other file(s) such as {files[0].name!r}" if files else " (it is empty)"
        raise W2GNUserError(
            f"{d}: contains no image files ({', '.join(IMAGE_EXTENSIONS[:3])}, ...){other}; put the images there"
        )
    return images


def expand_image_paths(items: Iterable[str | os.PathLike]) -> list[Path]:
    """Files and folders (their images, :func:`list_images`) -> a flat list of image paths."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out.extend(list_images(p))
        elif p.is_file():
            out.append(p)
        else:
            raise W2GNUserError(f"{p}: no such file or folder")
    if not out:
        raise W2GNUserError("no input images given")
    return out


def image_mode_channels(mode: str) -> int:
    """Channels an image of PIL ``mode`` decodes to: 1 for grey levels, 3 for colour."""
    return 1 if mode in _GRAY_MODES else 3


def read_image(path: str | os.PathLike, channels: int | None = None, load_size: int | None = None) -> np.ndarray:
    """Decode one image file to a ``uint8`` array ``(C, H, W)``.

    ``channels``: 1 (grey) or 3 (RGB); ``None`` keeps the file's own (grey stays grey, colour and
    palette images become RGB, alpha is dropped). ``load_size``: if given, resize (bicubic) so that
    the shorter side has this many pixels. Raises :class:`W2GNUserError` naming the file if it cannot
    be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        with Image.open(p) as im:
            im.load()
            c = channels if channels is not None else image_mode_channels(im.mode)
            if c not in (1, 3):
                raise W2GNUserError(f"channels must be 1 or 3, got {c}")
            im = im.convert("L" if c == 1 else "RGB")
            if load_size:
                w, h = im.size
                s = load_size / min(w, h)
                im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BICUBIC)
            arr = np.array(im, dtype=np.uint8)  # a writable copy
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, W2GNUserError):
            raise
        raise W2GNUserError(f"{p}: cannot be decoded as an image ({type(exc).__name__}: {exc}); remove or replace it") from exc
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def read_images(
    paths: Sequence[str | os.PathLike],
    channels: int | None = None,
    load_size: int | None = None,
    workers: int = 4,
    progress: bool = False,
    desc: str = "decoding",
) -> list[torch.Tensor]:
    """Decode many files in parallel threads (Pillow releases the GIL while decoding).

    Returns ``uint8`` tensors ``(C, H, W)``, all with the same number of channels: with
    ``channels=None`` a folder holding any colour image is decoded entirely as RGB (grey images
    are replicated to three channels), else as grey levels.
    """
    paths = list(paths)
    if channels is None:
        from PIL import Image

        modes = []
        for p in paths:
            try:
                with Image.open(p) as im:
                    modes.append(im.mode)
            except Exception:  # reported with the file name by read_image below
                modes.append("RGB")
        channels = 3 if any(image_mode_channels(m) == 3 for m in modes) else 1

    def one(p):
        return torch.from_numpy(read_image(p, channels, load_size))

    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        it = pool.map(one, paths)
        return list(tqdm(it, total=len(paths), disable=not progress, desc=desc, leave=False))


def to_unit(u8: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``uint8`` pixels -> floats in ``[-1, 1]``."""
    return u8.to(dtype) / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Floats in ``[-1, 1]`` -> ``uint8`` pixels (values outside are clipped)."""
    return ((x.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def save_image(path: str | os.PathLike, image: torch.Tensor) -> Path:
    """Write one image ``(C, H, W)`` with values in ``[-1, 1]`` (or ``uint8``) atomically.

    The format follows the file ending (``.png`` recommended: lossless).
    """
    from PIL import Image

    p = Path(path)
    fmt = Image.registered_extensions().get(p.suffix.lower())
    if fmt is None:
        raise W2GNUserError(f"{p}: unknown image format {p.suffix!r}; use .png or .jpg")
    t = image if image.dtype == torch.uint8 else to_uint8(image)
    arr = t.cpu().numpy().transpose(1, 2, 0)
    im = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    with atomic_path(p) as tmp:
        im.save(tmp, format=fmt)
    return p
