"""The container every image loader returns, and resizing."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import W2GNUserError


@dataclasses.dataclass
class ImageSet:
    """Images ``(N, C, H, W)`` float32 in ``[0, 1]`` with optional integer labels ``(N,)``.

    ``name`` says which data set (and which file) the images came from, for reports.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    name: str

    def __post_init__(self) -> None:
        if self.images.dim() != 4:
            raise W2GNUserError(f"{self.name}: expected images (N, C, H, W), got shape {tuple(self.images.shape)}")
        if self.images.shape[0] == 0:
            raise W2GNUserError(f"{self.name}: holds no images")
        if self.labels is not None and self.labels.shape != (self.images.shape[0],):
            raise W2GNUserError(f"{self.name}: {self.images.shape[0]} images but {tuple(self.labels.shape)} labels")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index) -> ImageSet:
        """The images (and labels) at ``index`` (slice, index tensor or array)."""
        idx = torch.as_tensor(np.asarray(index)) if not isinstance(index, slice) else index
        return ImageSet(self.images[idx], None if self.labels is None else self.labels[idx], self.name)

    def head(self, n: int | None) -> ImageSet:
        """The first ``n`` images (all if ``n`` is ``None``)."""
        return self if n is None or n >= len(self) else self.subset(slice(0, n))

    def resized(self, size: int | tuple[int, int]) -> ImageSet:
        return ImageSet(resize_images(self.images, size), self.labels, self.name)


def resize_images(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of ``(N, C, H, W)`` images to ``size``, clipped to ``[0, 1]``."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) == hw:
        return images
    out = []
    for s in range(0, images.shape[0], 4096):  # bounded memory on big sets
        b = images[s : s + 4096].float()
        out.append(F.interpolate(b, size=hw, mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1))
    return torch.cat(out)


def check_pixels(x: np.ndarray, name: str) -> None:
    """Reject non-finite pixels with a clear message."""
    if not np.isfinite(x).all():
        raise W2GNUserError(f"{name}: contains NaN or infinite pixel values")
