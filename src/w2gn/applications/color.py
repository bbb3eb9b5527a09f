"""Colour transfer between photos by a pixel-wise cycle-monotone map in RGB (paper, Appendix C.6).

The source ``P`` is the distribution of the content image's pixel colours, the target ``Q`` that of
the palette image; both are points of ``[0, 1]^3``. W2GN is trained on minibatches of random pixels
(so the palette's size never matters) and the fitted ``grad psi_theta`` is then applied to every
pixel of the content image, ``grad psi_omega`` to every pixel of the palette image (the inverse
transfer). Images are held as their integer samples; applying streams over chunks of rows, so the
extra memory is one output image plus one chunk of network activations, whatever the photo's size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..distributions import Sampler
from ..fitted_map import TransportMap
from ..io.atomic import atomic_path
from ..io.images import full_scale
from ..metrics import sliced_wasserstein
from ..networks import ConvexPotential, DenseICNN
from ..solvers import TimeBudget, W2GNSolver

#: W2GN settings of Appendix C.6: Dense ICNN [3; 128; 128, 64] (rank 3), 5000 iterations of 1024
#: pixels, Adam lr 1e-3, cycle weight lambda = 3, L1 penalty 1e-10 on the weights.
COLOR_DEFAULTS: dict[str, Any] = {
    "iterations": 5000,
    "batch_size": 1024,
    "lr": 1e-3,
    "lambda_cycle": 3.0,
    "hidden": [128, 128, 64],
    "rank": 3,
    "l1_penalty": 1e-10,
    # the colours' own means and spreads folded out (w2gn.affine_frame), as for every map fitted on raw
    # features; the command starts from the paper preset, whose frame is "none"
    "precondition": "diagonal",
    # C.6's one-sided correlations (the two-sided default costs ~1.6x per step)
    "correlation_on": "theta",
}

#: pixels per chunk when applying a map: bounds the activations held at once (~25 MB for [3;128;128,64])
CHUNK_PIXELS = 1 << 14


class PixelSampler(Sampler):
    """Random pixels of an integer RGB image ``(H, W, 3)``, as colours in ``[0, 1]^3``.

    Holds the image's own ``uint8``/``uint16`` samples (no float copy of the whole image) and
    converts only the drawn batch to :attr:`dtype`. Draws are uniform with replacement, so every pixel
    counts once in the palette, as in the paper.
    """

    def __init__(self, image: np.ndarray, name: str = "image", seed: int = 0) -> None:
        a = np.asarray(image)
        if a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"{name}: expected an (H, W, 3) RGB array, got shape {a.shape}")
        self._scale = full_scale(a)
        self._pixels = a.reshape(-1, 3)
        self._name = name
        self.shape = tuple(a.shape[:2])
        self.event_shape = (3,)
        self._cpu_gen = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return self._pixels.shape[0]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        # indices on the CPU (the image lives there); only the small batch travels to the device. A
        # generator on another device cannot draw CPU indices: a private seeded CPU one keeps runs repeatable.
        cpu_gen = generator if generator is None or generator.device.type == "cpu" else self._cpu_gen
        idx = torch.randint(self._pixels.shape[0], (n,), generator=cpu_gen).numpy()
        batch = torch.from_numpy(self._pixels[idx].astype(np.float32))
        return (batch * (1.0 / self._scale)).to(device=self.device, dtype=self.dtype)

    def describe(self) -> dict:
        return {**super().describe(), "name": self._name, "height": self.shape[0], "width": self.shape[1]}


def sample_pixels(image: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` random pixels (without replacement when the image has enough) as float32 ``(n, 3)`` in ``[0, 1]``."""
    a = np.asarray(image)
    flat = a.reshape(-1, 3)
    rng = np.random.default_rng(seed)
    idx = rng.choice(flat.shape[0], size=n, replace=flat.shape[0] < n)
    out = flat[idx].astype(np.float32)
    if np.issubdtype(a.dtype, np.integer):
        out /= np.float32(full_scale(a))
    return out


def fit_color_transfer(content: np.ndarray, palette: np.ndarray, callback=None, time_budget: float | None = None,
                       **options: Any) -> TransportMap:
    """Fit the colour map ``content palette -> palette palette`` with W2GN.

    Parameters
    ----------
    content, palette:
        Integer RGB images ``(H, W, 3)`` (as :func:`w2gn.io.images.read_rgb` returns); sizes may differ.
    callback:
        Passed to :meth:`w2gn.solvers.Solver.fit`.
    time_budget:
        Seconds of training after which the fit ends (:class:`~w2gn.solvers.TimeBudget`); ``None``: none.
    options:
        :class:`~w2gn.solvers.W2GNConfig` fields overriding :data:`COLOR_DEFAULTS` (C.6).

    Returns
    -------
    TransportMap
        ``forward`` recolours content colours with the palette's; ``inverse`` does the reverse.
        Inputs and outputs are RGB rows in ``[0, 1]``.
    """
    opts = {**COLOR_DEFAULTS, **options}
    solver = W2GNSolver(**opts)
    seed = int(opts.get("seed", 0))
    if time_budget:
        callback = TimeBudget(solver, time_budget, then=callback)
    fitted = solver.fit(PixelSampler(content, "content", seed), PixelSampler(palette, "palette", seed + 1), callback=callback)
    fitted.info["application"] = "color_transfer"
    return fitted


def _fast_gradient(potential: ConvexPotential):
    """The cheapest exact ``grad psi`` for inference: Dense ICNN's explicit backward (no autograd
    graph, about half the memory), else autograd without ``create_graph``."""
    if isinstance(potential, DenseICNN) and not (potential.training and potential.dropout > 0):
        def f(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return potential.gradient_analytic(x)
        return f
    return lambda x: potential.gradient(x, create_graph=False)


def recolor(
    fitted: TransportMap,
    image: np.ndarray,
    inverse: bool = False,
    chunk_pixels: int = CHUNK_PIXELS,
    progress: bool = True,
    desc: str = "apply",
    dedupe: bool = True,
) -> np.ndarray:
    """Apply a colour map to every pixel of ``image`` and return the recoloured ``uint8`` image.

    ``image`` is an integer ``(H, W, 3)`` array (``uint8``/``uint16``). Rows are streamed in blocks:
    each block's colours are converted to the map's dtype, mapped (``grad psi_theta``, or
    ``grad psi_omega`` if ``inverse``) in batches of ``chunk_pixels``, clipped to ``[0, 1]`` and
    rounded into the output. Memory beyond the output image is one block, whatever the image size.

    With ``dedupe`` (8-bit images), each block's distinct colours are mapped once and scattered back:
    the result is identical (the map is pixel-wise) but photos repeat colours a lot, so this is
    several times faster.
    """
    from ..errors import W2GNUserError

    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise W2GNUserError(f"expected an (H, W, 3) RGB image, got shape {a.shape}")
    if tuple(fitted.event_shape) != (3,):
        raise W2GNUserError(f"the map is for samples of shape {fitted.event_shape}, not RGB colours (3,)")
    pot = fitted.inverse_potential if inverse else fitted.forward_potential
    if pot is None:
        raise W2GNUserError("the map has no inverse network; fit it with method 'w2gn' to recolour the palette image")
    if chunk_pixels <= 0:
        raise W2GNUserError(f"chunk_pixels must be positive, got {chunk_pixels}")
    pot.eval()
    inner = _fast_gradient(pot)
    frame = fitted.frame

    def grad(x: torch.Tensor) -> torch.Tensor:
        # the networks work in the fit's frame (w2gn.affine_frame); colours come and go in RGB
        if frame is None:
            return inner(x)
        if inverse:
            return frame.from_source(inner(frame.to_target(x)))
        return frame.from_target(inner(frame.to_source(x)))
    scale = np.float32(1.0 / full_scale(a))
    device, dtype = fitted.device, fitted.dtype
    dedupe = dedupe and a.dtype == np.uint8

    def map_colors(colors: np.ndarray) -> np.ndarray:
        out = np.empty(colors.shape, dtype=np.uint8)
        for s in range(0, colors.shape[0], chunk_pixels):
            x = torch.from_numpy(colors[s : s + chunk_pixels].astype(np.float32) * scale).to(device=device, dtype=dtype)
            out[s : s + chunk_pixels] = grad(x).clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8).cpu().numpy()
        return out

    h, w = a.shape[:2]
    block = max(chunk_pixels, 1 << 17) if dedupe else chunk_pixels
    rows = max(1, block // w)
    out = np.empty((h, w, 3), dtype=np.uint8)
    with tqdm(total=h * w, unit="px", unit_scale=True, disable=not progress, desc=desc, leave=False) as bar:
        for s in range(0, h, rows):
            flat = a[s : s + rows].reshape(-1, 3)
            if dedupe:
                code = flat[:, 0].astype(np.int32)
                code <<= 8
                code |= flat[:, 1]
                code <<= 8
                code |= flat[:, 2]
                uniq, inv = np.unique(code, return_inverse=True)
                colors = np.stack([uniq >> 16, (uniq >> 8) & 255, uniq & 255], axis=1).astype(np.uint8)
                mapped = map_colors(colors)[inv.reshape(-1)]
            else:
                mapped = map_colors(flat)
            out[s : s + rows] = mapped.reshape(-1, w, 3)
            bar.update(flat.shape[0])
    return out


def palette_distance(a: np.ndarray, b: np.ndarray, n_projections: int = 256, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance (RGB units in ``[0, 1]``) between two pixel sets ``(N, 3)``/``(M, 3)``."""
    gen = torch.Generator().manual_seed(int(seed))
    return sliced_wasserstein(torch.as_tensor(a), torch.as_tensor(b), n_projections=n_projections, generator=gen)


def palette_figure(path: str | os.PathLike, panels: Sequence[tuple[str, np.ndarray]], columns: int = 2,
                   title: str | None = None) -> Path:
    """Write 3-D RGB scatter plots of pixel sets (Figure 16b) to a PNG, atomically.

    ``panels``: ``(title, pixels (N, 3) in [0, 1])`` pairs, each drawn as points at their colour
    coordinates in their own colour. A few thousand pixels per panel is enough (the paper uses 3000).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    fig = plt.figure(figsize=(4.0 * cols, 3.8 * rows))
    for i, (name, pix) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1, projection="3d")
        c = np.clip(np.asarray(pix, dtype=np.float64), 0.0, 1.0)
        ax.scatter(c[:, 0], c[:, 1], c[:, 2], c=c, s=2, depthshade=False, linewidths=0)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_zlim(0, 1)
        ax.set_xlabel("R")
        ax.set_ylabel("G")
        ax.set_zlabel("B")
        ax.set_title(name, fontsize=10)
        ax.view_init(elev=20, azim=-60)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return Path(path)
