"""Read and write RGB photos for colour transfer (Pillow), without float64 copies of large images.

:func:`read_rgb` returns the image's own integer samples ``(H, W, 3)`` (``uint8``, or ``uint16`` for
16-bit greyscale) so that a 10-megapixel photo costs 30 MB, not 240 MB; (:func:`w2gn.io.images.load_rgb`
gives float32 ``[0, 1]`` arrays with alpha handling for small images). Conversions that keep the colours (greyscale, palette,
CMYK, YCbCr, opaque alpha) are done silently; ones that would lose information (transparency,
float images, unreadable files) raise :class:`~w2gn.errors.W2GNUserError` with one line naming the
file and what to do.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import W2GNUserError
from .atomic import atomic_path

#: extensions :func:`save_rgb` can write, and the Pillow format it uses for each
IMAGE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP",
                 ".webp": "WEBP"}

#: default refusal threshold for the pixel count (Pillow's own "decompression bomb" limit is ~179 MP)
MAX_PIXELS = 400_000_000


def _open(path: Path, max_pixels: int):
    from PIL import Image

    if not path.exists():
        raise W2GNUserError(f"{path}: no such image file")
    if path.is_dir():
        raise W2GNUserError(f"{path}: is a folder, not an image file")
    old = Image.MAX_IMAGE_PIXELS
    try:
        # our own limit replaces Pillow's: large photos are the point of this code path
        Image.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
            w, h = img.size
            if w * h > max_pixels:
                raise W2GNUserError(f"{path}: {w}x{h} = {w * h / 1e6:.0f} megapixels exceeds the limit of "
                                    f"{max_pixels / 1e6:.0f}; downscale it first")
            img.load()
    except W2GNUserError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise W2GNUserError(f"{path}: cannot be read as an image ({type(exc).__name__}: {exc}); "
                            "use a JPEG, PNG, TIFF, BMP or WebP file") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = old
    return img


def read_rgb(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image as integer RGB samples, shape ``(H, W, 3)``.

    Returns ``uint8`` (full scale 255) for 8-bit images and ``uint16`` (full scale 65535) for 16-bit
    greyscale ones (Pillow decodes 16-bit colour PNG/TIFF to 8 bits itself). Greyscale is repeated
    into three channels; palette, CMYK, YCbCr and bilevel images are converted to RGB; an alpha
    channel is dropped if every pixel is opaque. Raises :class:`W2GNUserError` for unreadable files,
    transparent images (what colour is a transparent pixel?), float or 32-bit integer images and
    images over ``max_pixels``.
    """
    p = Path(path)
    img = _open(p, max_pixels)
    mode = img.mode
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"))
        if int(alpha.min()) < 255:
            frac = float((alpha < 255).mean())
            raise W2GNUserError(f"{p}: has transparent pixels ({100 * frac:.1f}% of the image); flatten it onto a "
                                "background (e.g. save as JPEG) first")
        img = rgba.convert("RGB")
    if mode.startswith("I;16") or (mode == "I" and _fits_16bit(img)):
        grey = np.asarray(img, dtype=np.uint16) if mode.startswith("I;16") else np.asarray(img).astype(np.uint16)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode in ("I", "F"):
        raise W2GNUserError(f"{p}: is a {'floating-point' if mode == 'F' else '32-bit integer'} image (mode {mode}); "
                            "convert it to 8- or 16-bit RGB first")
    if img.mode != "RGB":
        img = img.convert("RGB")
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise W2GNUserError(f"{p}: unexpected decoded layout {arr.shape} {arr.dtype}; convert it to 8-bit RGB first")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise W2GNUserError(f"{p}: the image is empty")
    return arr


def _fits_16bit(img) -> bool:
    lo, hi = img.getextrema()
    return lo >= 0 and hi <= 65535


def full_scale(arr: np.ndarray) -> float:
    """The value of white for an integer image array (255 for ``uint8``, 65535 for ``uint16``)."""
    if arr.dtype == np.uint8:
        return 255.0
    if arr.dtype == np.uint16:
        return 65535.0
    raise TypeError(f"expected uint8 or uint16 samples, got {arr.dtype}")


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in ``[0, 1]`` (clipped) or an integer image -> ``uint8`` with rounding."""
    a = np.asarray(rgb)
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if not np.issubdtype(a.dtype, np.floating):
        raise W2GNUserError(f"cannot save an image of dtype {a.dtype}; give floats in [0, 1] or uint8")
    out = np.empty(a.shape, dtype=np.uint8)
    rows = max(1, (1 << 22) // max(1, a[0].size))  # ~4M values per chunk: no full-size float64 temporary
    for s in range(0, a.shape[0], rows):
        c = np.nan_to_num(a[s : s + rows].astype(np.float32), nan=0.0)
        np.clip(c, 0.0, 1.0, out=c)
        out[s : s + rows] = np.rint(c * 255.0)
    return out


def save_rgb(path: str | os.PathLike, rgb: np.ndarray, quality: int = 95) -> Path:
    """Write ``(H, W, 3)`` RGB (floats in ``[0, 1]`` or ``uint8``) to ``path`` atomically.

    The format follows the extension (:data:`IMAGE_FORMATS`); JPEG/WebP use ``quality``. A crash
    leaves either the old file or none, never a partial one.
    """
    from PIL import Image

    p = Path(path)
    fmt = IMAGE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise W2GNUserError(f"{p}: unknown image extension {p.suffix!r}; use one of {', '.join(sorted(IMAGE_FORMATS))}")
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3:
        raise W2GNUserError(f"{p}: expected an (H, W, 3) RGB array, got shape {a.shape}")
    img = Image.fromarray(np.ascontiguousarray(to_uint8(a)))
    opts = {"quality": int(quality)} if fmt in ("JPEG", "WEBP") else {}
    with atomic_path(p) as tmp:
        img.save(tmp, format=fmt, **opts)
    return p


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True if ``a`` and ``b`` name the same existing file (symlinks and relative paths resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()
