"""Loaders of the image data sets used by the learned-feature experiments (one file per format).

Every loader returns an :class:`ImageSet`: float32 images ``(N, C, H, W)`` in ``[0, 1]`` and integer
labels ``(N,)`` (or ``None``), and raises :class:`~w2gn.errors.W2GNUserError` naming the file and
the problem when the input is not what it should be.
"""

from .digits import load_sklearn_digits
from .image_folder import load_image_folder
from .imageset import ImageSet, resize_images
from .mnist import find_packaged_mnist, load_mnist, load_mnist_csv, load_mnist_idx
from .usps import find_usps, load_usps

__all__ = [
    "ImageSet",
    "resize_images",
    "load_sklearn_digits",
    "load_image_folder",
    "find_packaged_mnist",
    "load_mnist",
    "load_mnist_csv",
    "load_mnist_idx",
    "find_usps",
    "load_usps",
]
