"""Folders of image files (the CelebA ``img_align_celeba`` layout: one JPEG per face)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import W2GNUserError
from ..io.image_folders import list_images as _list_image_files
from .imageset import ImageSet
from .paths import find_in_shared


def find_celeba() -> Path | None:
    """``celeba/img_align_celeba`` in the shared data folders, or ``None``."""
    return find_in_shared("celeba/img_align_celeba", "img_align_celeba")


def celeba_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, or in its ``img_align_celeba`` subfolder when it has one
    (the CelebA archive's layout), by :func:`w2gn.io.image_folders.list_images`'s rules."""
    if (folder / "img_align_celeba").is_dir():
        folder = folder / "img_align_celeba"
    return _list_image_files(folder)


def load_image_folder(
    folder: str | os.PathLike, size: int = 64, limit: int | None = None, grayscale: bool = False, progress: bool = False
) -> ImageSet:
    """Load the images of ``folder`` as ``(N, 3, size, size)`` (or 1 channel if ``grayscale``) in ``[0, 1]``.

    Each image is centre-cropped to a square (for 178x218 / 89x109 CelebA faces that is the usual
    face crop) and resized with Pillow's antialiased bilinear filter. Files are read in name order;
    ``limit`` keeps the first ones. Unreadable files raise :class:`W2GNUserError` naming the file.
    """
    from PIL import Image, UnidentifiedImageError
    from tqdm.auto import tqdm

    root = Path(folder)
    if not root.is_dir():
        raise W2GNUserError(f"{root}: no such image folder")
    files = celeba_images(root)
    if limit is not None:
        files = files[:limit]
    mode = "L" if grayscale else "RGB"
    out = np.empty((len(files), size, size, 1 if grayscale else 3), dtype=np.uint8)
    for i, f in enumerate(tqdm(files, desc="images", disable=not progress, leave=False)):
        try:
            with Image.open(f) as im:
                im = im.convert(mode)
                w, h = im.size
                s = min(w, h)
                left, top = (w - s) // 2, (h - s) // 2
                im = im.crop((left, top, left + s, top + s)).resize((size, size), Image.BILINEAR, reducing_gap=None)
                arr = np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise W2GNUserError(f"{f}: cannot be read as an image ({exc}); remove it or fix it") from exc
        out[i] = arr.reshape(size, size, -1)
    x = torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
    return ImageSet(x, None, f"image folder {root.name}")
