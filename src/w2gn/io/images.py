"""Read and write single RGB images (Pillow), refusing with a one-line message whatever cannot be read faithfully.

:func:`read_rgb` returns the image's own integer samples ``(H, W, 3)`` (``uint8``, or ``uint16`` for
16-bit greyscale), so that a 10-megapixel photo costs 30 MB rather than 120 MB of floats;
:func:`load_rgb` gives the same pixels as ``float32`` in ``[0, 1]`` (and also reads floating-point
images). Conversions that keep the colours (greyscale, palette, CMYK, YCbCr, opaque alpha, EXIF
orientation) are done silently. Transparency is refused unless ``alpha`` says what to do with it,
because any choice changes the colour distribution. :func:`save_rgb` writes floats in ``[0, 1]``
or integer samples as an 8-bit file, atomically.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import W2GNUserError
from .atomic import atomic_path, check_output_path

#: extensions :func:`read_rgb` / :func:`load_rgb` accept (also where sample files are accepted)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")

#: extensions :func:`save_rgb` can write, and the Pillow format it uses for each
IMAGE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP",
                 ".webp": "WEBP"}

#: what ``alpha=`` may say about transparent pixels
ALPHA_MODES = ("error", "drop", "white", "black")

#: default refusal threshold for the pixel count (Pillow's own "decompression bomb" limit is ~179 MP)
MAX_PIXELS = 400_000_000

# modes whose conversion to RGB keeps every colour
_RGB_CONVERTIBLE = ("RGB", "RGBX", "L", "1", "CMYK", "YCbCr")
_ALPHA_MODES_PIL = ("RGBA", "LA", "PA", "RGBa", "La")

# Pillow's bomb limit is a process-wide global; concurrent readers share one override so that the
# last one out restores it (a plain save/restore per call would race and could leave it off).
_limit_lock = threading.Lock()
_limit_users = 0
_limit_saved: int | None = None


@contextlib.contextmanager
def _pillow_limit_lifted() -> Iterator[None]:
    from PIL import Image

    global _limit_users, _limit_saved
    with _limit_lock:
        if _limit_users == 0:
            _limit_saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _limit_users += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit_users -= 1
            if _limit_users == 0:
                Image.MAX_IMAGE_PIXELS = _limit_saved


def _read(p: Path, alpha: str, max_pixels: int, allow_float: bool) -> np.ndarray:
    """Open, size-check, decode and orient one image; every refusal is a one-line W2GNUserError."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not p.exists():
        raise W2GNUserError(f"{p}: no such file")
    if p.is_dir():
        raise W2GNUserError(f"{p}: is a folder, expected an image file")
    if p.stat().st_size == 0:
        raise W2GNUserError(f"{p}: the file is empty, not an image")
    try:
        # our own limit replaces Pillow's: large photos are legitimate input here, and the limit is
        # checked on the header before any pixel is decoded
        with _pillow_limit_lifted(), Image.open(p) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise W2GNUserError(f"{p}: {w}x{h} = {w * h / 1e6:.0f} megapixels exceeds the limit of "
                                    f"{max_pixels / 1e6:.0f}; downscale it first")
            im.load()
            # in place: no copy of the pixels when the orientation is already upright
            ImageOps.exif_transpose(im, in_place=True)
            return _decode(im, p, alpha, allow_float)
    except W2GNUserError:
        raise
    except PermissionError as exc:
        raise W2GNUserError(f"{p}: cannot be read (permission denied)") from exc
    except UnidentifiedImageError as exc:
        raise W2GNUserError(f"{p}: is not an image Pillow can read (wrong extension or damaged file); "
                            "use a JPEG, PNG, TIFF, BMP or WebP file") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = " ".join(str(exc).split())
        raise W2GNUserError(f"{p}: damaged or truncated image ({type(exc).__name__}: {msg})") from exc


def _decode(im, p: Path, alpha: str, allow_float: bool) -> np.ndarray:
    """Pillow image -> ``(H, W, 3)`` integer samples, or ``float32`` for mode F if ``allow_float``."""
    mode = im.mode
    # palettes and PNG tRNS chunks carry transparency outside an alpha band; expand it so it is not lost
    if mode in ("P", "L", "RGB", "1") and "transparency" in im.info:
        im, mode = im.convert("RGBA"), "RGBA"
    elif mode == "P":
        im, mode = im.convert("RGB"), "RGB"
    if mode in _ALPHA_MODES_PIL:
        rgba = np.asarray(im.convert("RGBA"))
        out = _apply_alpha(rgba, p, alpha)
    elif mode in _RGB_CONVERTIBLE:
        out = np.asarray(im if mode == "RGB" else im.convert("RGB"))
    elif mode == "I" or mode.startswith("I;16"):
        grey = np.asarray(im)
        if grey.size and (int(grey.min()) < 0 or int(grey.max()) > 65535):
            raise W2GNUserError(f"{p}: 32-bit integer image with values outside [0, 65535]; convert it to 8 or 16 bits")
        out = np.repeat(grey.astype(np.uint16)[:, :, None], 3, axis=2)
    elif mode == "F":
        if not allow_float:
            raise W2GNUserError(f"{p}: is a floating-point image (mode F) without integer samples; read it with "
                                "load_rgb, or convert it to 8- or 16-bit first")
        grey = np.asarray(im, dtype=np.float32)
        if not np.isfinite(grey).all() or grey.min() < 0 or grey.max() > 1:
            raise W2GNUserError(f"{p}: floating-point image with values outside [0, 1]; rescale it to [0, 1] first")
        out = np.repeat(grey[:, :, None], 3, axis=2)
    else:
        raise W2GNUserError(f"{p}: image mode {mode!r} has no faithful RGB conversion; save it as an RGB PNG or JPEG")
    if out.ndim != 3 or out.shape[2] != 3 or out.shape[0] == 0 or out.shape[1] == 0:
        raise W2GNUserError(f"{p}: decoded to an unusable shape {out.shape}")
    return np.ascontiguousarray(out)


def _row_blocks(shape: tuple[int, ...], values: int = 1 << 21) -> Iterator[slice]:
    """Row slices of about ``values`` samples: bounds the temporaries of per-pixel arithmetic."""
    row = int(np.prod(shape[1:], dtype=np.int64)) or 1
    step = max(1, values // row)
    for s in range(0, shape[0], step):
        yield slice(s, s + step)


def _apply_alpha(rgba: np.ndarray, p: Path, alpha: str) -> np.ndarray:
    a = rgba[..., 3]
    if alpha == "drop" or int(a.min()) == 255:
        return rgba[..., :3]
    if alpha == "error":
        frac = float((a < 255).mean())
        raise W2GNUserError(f"{p}: has transparent pixels ({100 * frac:.1f}% of the image); flatten it onto a "
                            "background first, or choose alpha handling (drop/white/black)")
    bg = 255 if alpha == "white" else 0
    out = np.empty(rgba.shape[:2] + (3,), dtype=np.uint8)
    for rows in _row_blocks(out.shape):
        c = rgba[rows].astype(np.uint16)
        w = c[..., 3:4]
        # 255*255 + 127 fits uint16; "+127, //255" rounds to nearest (255 is odd, so no ties)
        out[rows] = (c[..., :3] * w + bg * (255 - w) + 127) // 255
    return out


def read_rgb(path: str | os.PathLike, alpha: str = "error", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file as its integer RGB samples, shape ``(H, W, 3)``.

    Parameters
    ----------
    path:
        An image file Pillow can read (JPEG, PNG, TIFF, BMP, WebP, GIF, PPM).
    alpha:
        What to do with transparent pixels: ``"error"`` (default: refuse), ``"drop"`` (ignore the
        alpha channel), ``"white"``/``"black"`` (composite over that background, rounded to the
        nearest integer). A fully opaque alpha channel is dropped whatever ``alpha`` says.
    max_pixels:
        Refuse images with more pixels than this (checked on the header, before decoding).

    Returns
    -------
    numpy.ndarray
        ``uint8`` (white is 255) for 8-bit images, ``uint16`` (white is 65535) for 16-bit greyscale
        ones (Pillow itself decodes 16-bit colour PNG/TIFF to 8 bits). Greyscale is repeated into
        three channels; palette, CMYK, YCbCr and bilevel images are converted to RGB; the EXIF
        orientation is applied.

    Raises
    ------
    W2GNUserError
        Missing, empty, unreadable, damaged or non-image file; an image over ``max_pixels``;
        transparency with ``alpha="error"``; floating-point images (use :func:`load_rgb`) and
        modes with no faithful RGB conversion.
    """
    p = Path(path)
    if alpha not in ALPHA_MODES:
        raise W2GNUserError(f"alpha must be one of {', '.join(ALPHA_MODES)}, got {alpha!r}")
    return _read(p, alpha, max_pixels, allow_float=False)


def load_rgb(path: str | os.PathLike, alpha: str = "error", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file as a ``float32`` array ``(H, W, 3)`` with values in ``[0, 1]``.

    The pixels of :func:`read_rgb` divided by their full scale (255 or 65535), so 16-bit greyscale
    keeps its depth. Floating-point (mode F) images are also accepted if their values lie in
    ``[0, 1]``. ``alpha`` and ``max_pixels`` are as for :func:`read_rgb`.

    Raises
    ------
    W2GNUserError
        Everything :func:`read_rgb` refuses except floating-point images, and those with values
        outside ``[0, 1]``.
    """
    p = Path(path)
    if alpha not in ALPHA_MODES:
        raise W2GNUserError(f"alpha must be one of {', '.join(ALPHA_MODES)}, got {alpha!r}")
    raw = _read(p, alpha, max_pixels, allow_float=True)
    if raw.dtype == np.float32:
        return raw
    out = raw.astype(np.float32)
    out /= np.float32(full_scale(raw))
    return out


def full_scale(arr: np.ndarray) -> float:
    """The value of white for an integer image array (255 for ``uint8``, 65535 for ``uint16``)."""
    if arr.dtype == np.uint8:
        return 255.0
    if arr.dtype == np.uint16:
        return 65535.0
    raise TypeError(f"expected uint8 or uint16 samples, got {arr.dtype}")


def _to_uint8(a: np.ndarray, where: str) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    out = np.empty(a.shape, dtype=np.uint8)
    if a.dtype == np.uint16:
        for rows in _row_blocks(a.shape):
            out[rows] = (a[rows].astype(np.uint32) * 255 + 32767) // 65535
        return out
    if not np.issubdtype(a.dtype, np.floating):
        raise W2GNUserError(f"{where}: cannot write an image of dtype {a.dtype}; give floats in [0, 1], uint8 or uint16")
    # float64 input keeps float64 arithmetic (same rounding as converting whole), but only per block
    work = np.result_type(a.dtype, np.float32)
    buf = None
    for rows in _row_blocks(a.shape):
        block = a[rows]
        if buf is None:
            buf = np.empty(block.shape, dtype=work)  # reused: one block of temporaries, whatever the image size
        c = buf[: block.shape[0]]
        c[...] = block
        if not np.isfinite(c).all():
            raise W2GNUserError(f"{where}: refusing to write an image with NaN/inf values")
        np.clip(c, 0.0, 1.0, out=c)
        c *= 255.0
        np.rint(c, out=c)
        out[rows] = c
    return out


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Floats in ``[0, 1]`` (clipped, rounded) or ``uint8``/``uint16`` samples -> ``uint8``.

    Works in blocks of rows, so a large float image never gets a full-size ``float64`` copy.
    Raises :class:`W2GNUserError` for NaN/inf values and for other dtypes.
    """
    return _to_uint8(np.asarray(rgb), "image")


def save_rgb(path: str | os.PathLike, rgb, overwrite: bool = False, quality: int = 95) -> Path:
    """Write an ``(H, W, 3)`` RGB image as an 8-bit file, atomically.

    Parameters
    ----------
    path:
        Output file; its extension picks the format (:data:`IMAGE_FORMATS`).
    rgb:
        Floats in ``[0, 1]`` (values outside are clipped), ``uint8`` or ``uint16`` samples; a NumPy
        array or a tensor.
    overwrite:
        Replace an existing file (otherwise refused).
    quality:
        JPEG/WebP quality.

    Returns
    -------
    pathlib.Path
        ``path``. A crash leaves either the old file or none, never a partial one.

    Raises
    ------
    W2GNUserError
        Unknown extension, missing/unwritable folder, existing file without ``overwrite``, a shape
        other than ``(H, W, 3)``, NaN/inf values, or an unsupported dtype.
    """
    from PIL import Image

    p = Path(path)
    fmt = IMAGE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise W2GNUserError(f"{p}: unknown image extension {p.suffix!r}; use one of {', '.join(sorted(IMAGE_FORMATS))}")
    check_output_path(p, overwrite)
    a = np.asarray(rgb.detach().cpu().numpy() if hasattr(rgb, "detach") else rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise W2GNUserError(f"{p}: expected an (H, W, 3) RGB array, got shape {a.shape}")
    img = Image.fromarray(np.ascontiguousarray(_to_uint8(a, str(p))))
    opts = {"quality": int(quality)} if fmt in ("JPEG", "WEBP") else {}
    with atomic_path(p) as tmp:
        img.save(tmp, format=fmt, **opts)
    return p


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True if ``a`` and ``b`` name the same file (symlinks and relative paths resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()
