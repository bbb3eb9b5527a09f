"""Distribution distances between two sets of images, for checking style transfer without eyes.

All three are sliced 2-Wasserstein distances (:func:`~w2gn.metrics.sliced_wasserstein`) in the
``[-1, 1]`` pixel units: on the raw pixels of the crops (``sw_pixels``), on images averaged down to
``small x small`` (``sw_small``: layout and colour at coarse scale) and on the cloud of single pixel
colours (``sw_colour``: a colour-histogram distance that ignores where the colours are).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .sliced import sliced_wasserstein


def downsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Average ``(N, C, H, W)`` images down to ``(N, C, size, size)`` (area averaging)."""
    return F.adaptive_avg_pool2d(x, size)


def pixel_colours(x: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` random pixels of the images ``(N, C, H, W)`` as colour rows ``(n, C)``."""
    cols = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    idx = torch.randint(cols.shape[0], (n,), generator=generator, device=cols.device)
    return cols[idx]


def image_distances(
    x: torch.Tensor,
    y: torch.Tensor,
    small: int = 8,
    n_projections: int = 512,
    n_colours: int = 4096,
    n_projections_colour: int = 128,
    seed: int = 0,
) -> dict[str, float]:
    """Sliced W2 distances between image sets ``x`` ``(N, C, H, W)`` and ``y`` ``(M, C, H, W)``.

    Returns ``{"sw_pixels", "sw_small", "sw_colour"}`` (see the module doc); ``sw_pixels`` needs
    equal image sizes. ``sw_colour`` compares ``n_colours`` random pixels of each set (3-D colours need
    fewer directions: ``n_projections_colour``). The same ``seed`` gives the same projections, so distances from one call to
    the next (translated vs. untranslated images) are comparable.
    """
    x = x.detach().cpu().to(torch.float64)
    y = y.detach().cpu().to(torch.float64)

    def gen(k: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed + k)

    out = {}
    if x.shape[1:] == y.shape[1:]:
        out["sw_pixels"] = sliced_wasserstein(x.flatten(1), y.flatten(1), n_projections, gen(0))
    out["sw_small"] = sliced_wasserstein(downsample(x, small).flatten(1), downsample(y, small).flatten(1), n_projections, gen(1))
    out["sw_colour"] = sliced_wasserstein(pixel_colours(x, n_colours, gen(2)), pixel_colours(y, n_colours, gen(3)),
                                          n_projections_colour, gen(4))
    return out
