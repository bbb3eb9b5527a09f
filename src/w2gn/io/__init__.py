"""File input/output: sample arrays, images and atomic writes."""

from .arrays import SAMPLE_EXTENSIONS, load_samples, save_samples
from .atomic import atomic_path, atomic_torch_save, check_output_path
from .images import IMAGE_EXTENSIONS, load_rgb, save_rgb

__all__ = ["SAMPLE_EXTENSIONS", "IMAGE_EXTENSIONS", "load_samples", "save_samples", "load_rgb", "save_rgb",
           "atomic_path", "atomic_torch_save", "check_output_path"]
