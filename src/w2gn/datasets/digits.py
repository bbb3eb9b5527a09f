"""The UCI optical digits that ship with scikit-learn (8x8, 1797 images): the offline USPS stand-in."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import W2GNUserError
from .imageset import ImageSet


def load_sklearn_digits(size: int | None = 16) -> ImageSet:
    """``sklearn.datasets.load_digits`` as an :class:`ImageSet` (values 0..16 scaled to ``[0, 1]``).

    ``size``: side length to resize the 8x8 images to (``None`` keeps 8x8). Needs scikit-learn
    (the ``data`` extra); the data ship inside the package, so nothing is downloaded.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise W2GNUserError("the scikit-learn digits need scikit-learn: pip install 'w2gn[data]'") from exc
    d = load_digits()
    x = torch.from_numpy((d.images.astype(np.float32) / 16.0)[:, None])
    s = ImageSet(x, torch.from_numpy(d.target.astype(np.int64)), "sklearn-digits (UCI 8x8)")
    return s.resized(size) if size is not None else s
