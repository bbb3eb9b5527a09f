"""File input/output: sample arrays and atomic writes."""

from .arrays import SAMPLE_EXTENSIONS, load_samples, save_samples
from .atomic import atomic_path, atomic_torch_save, check_output_path

__all__ = ["SAMPLE_EXTENSIONS", "load_samples", "save_samples", "atomic_path", "atomic_torch_save", "check_output_path"]
