"""Read and write RGB images as float arrays, converting or refusing every other kind with a message.

:func:`load_rgb` returns ``float32`` arrays of shape ``(H, W, 3)`` in ``[0, 1]`` whatever the file
holds: greyscale (8/16/32-bit) is replicated to three channels, palettes are expanded, 16-bit
channels are scaled by 65535 (not clipped to 8 bits), CMYK/YCbCr are converted, the EXIF
orientation is applied. Transparency is refused unless ``alpha`` says what to do with it, because
any choice changes the colour distribution; a fully opaque alpha channel is simply dropped.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import W2GNUserError
from .atomic import atomic_path, check_output_path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
ALPHA_MODES = ("error", "drop", "white", "black")


def load_rgb(path: str | os.PathLike, alpha: str = "error") -> np.ndarray:
    """Load an image file as a ``float32`` array ``(H, W, 3)`` with values in ``[0, 1]``.

    Parameters
    ----------
    path:
        An image file Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP).
    alpha:
        What to do with transparent pixels: ``"error"`` (default: refuse), ``"drop"`` (ignore the
        alpha channel), ``"white"``/``"black"`` (composite over that background).

    Raises
    ------
    W2GNUserError
        Missing/unreadable/empty file, a file that is not an image, a truncated image, a mode that
        has no faithful RGB conversion, or transparency with ``alpha="error"``.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if alpha not in ALPHA_MODES:
        raise W2GNUserError(f"alpha must be one of {', '.join(ALPHA_MODES)}, got {alpha!r}")
    p = Path(path)
    if not p.exists():
        raise W2GNUserError(f"{p}: no such file")
    if p.is_dir():
        raise W2GNUserError(f"{p}: is a folder, expected an image file")
    if p.stat().st_size == 0:
        raise W2GNUserError(f"{p}: the file is empty, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                im.load()
                im = ImageOps.exif_transpose(im) or im
                return _to_rgb(im, p, alpha)
    except W2GNUserError:
        raise
    except PermissionError as exc:
        raise W2GNUserError(f"{p}: cannot be read (permission denied)") from exc
    except UnidentifiedImageError as exc:
        raise W2GNUserError(f"{p}: is not an image Pillow can read (wrong extension or damaged file)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise W2GNUserError(f"{p}: image too large ({exc}); downscale it first") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise W2GNUserError(f"{p}: damaged or truncated image ({exc})") from exc


def _to_rgb(im, p: Path, alpha: str) -> np.ndarray:
    mode = im.mode
    if mode == "P":
        # palettes may carry transparency; expand to RGBA so that it is not silently lost
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    elif mode == "PA":
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGB", "L", "1", "CMYK", "YCbCr"):
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    elif mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        arr = _apply_alpha(rgba[..., :3], rgba[..., 3], p, alpha)
    elif mode.startswith("I;16") or mode == "I":
        grey = np.asarray(im, dtype=np.float64)
        if mode == "I" and (grey.min() < 0 or grey.max() > 65535):
            raise W2GNUserError(f"{p}: 32-bit integer image with values outside [0, 65535]; convert it to 8 or 16 bits")
        arr = np.repeat((grey / 65535.0)[..., None], 3, axis=2).astype(np.float32)
    elif mode == "F":
        grey = np.asarray(im, dtype=np.float32)
        if not np.isfinite(grey).all() or grey.min() < 0 or grey.max() > 1:
            raise W2GNUserError(f"{p}: floating-point image with values outside [0, 1]; rescale it to [0, 1] first")
        arr = np.repeat(grey[..., None], 3, axis=2)
    else:
        raise W2GNUserError(f"{p}: image mode {mode!r} has no faithful RGB conversion; save it as an RGB PNG or JPEG")
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise W2GNUserError(f"{p}: decoded to an unusable shape {arr.shape}")
    return np.ascontiguousarray(np.clip(arr, 0.0, 1.0), dtype=np.float32)


def _apply_alpha(rgb: np.ndarray, a: np.ndarray, p: Path, alpha: str) -> np.ndarray:
    if alpha == "drop" or bool((a >= 1.0).all()):
        return rgb
    if alpha == "error":
        frac = float((a < 1.0).mean())
        raise W2GNUserError(f"{p}: has transparent pixels ({100 * frac:.1f}% of the image); flatten it onto a "
                            "background first, or choose alpha handling (drop/white/black)")
    bg = 1.0 if alpha == "white" else 0.0
    return rgb * a[..., None] + bg * (1.0 - a[..., None])


def save_rgb(path: str | os.PathLike, image, overwrite: bool = False, quality: int = 95) -> Path:
    """Write an ``(H, W, 3)`` array with values in ``[0, 1]`` as an 8-bit image (format by extension), atomically."""
    from PIL import Image

    p = check_output_path(path, overwrite)
    ext = p.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise W2GNUserError(f"{p}: unknown image extension {ext!r}; use one of {', '.join(IMAGE_EXTENSIONS)}")
    arr = np.asarray(image.detach().cpu().numpy() if hasattr(image, "detach") else image, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise W2GNUserError(f"{p}: expected an (H, W, 3) image array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise W2GNUserError(f"{p}: refusing to write an image with NaN/inf values")
    img = Image.fromarray(np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8), "RGB")
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(ext, ext[1:].upper())
    with atomic_path(p) as tmp:
        img.save(tmp, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return p
