"""File input/output: sample arrays, images and atomic writes."""

from .arrays import SAMPLE_EXTENSIONS, load_samples, open_samples, save_samples
from .atomic import atomic_path, atomic_torch_save, check_output_path
from .images import (
    ALPHA_MODES,
    IMAGE_EXTENSIONS,
    IMAGE_FORMATS,
    MAX_PIXELS,
    full_scale,
    load_rgb,
    read_rgb,
    same_file,
    save_rgb,
    to_uint8,
)

__all__ = ["SAMPLE_EXTENSIONS", "IMAGE_EXTENSIONS", "IMAGE_FORMATS", "ALPHA_MODES", "MAX_PIXELS", "load_samples",
           "open_samples",
           "save_samples", "read_rgb", "load_rgb", "save_rgb", "full_scale", "to_uint8", "same_file", "atomic_path",
           "atomic_torch_save", "check_output_path"]
