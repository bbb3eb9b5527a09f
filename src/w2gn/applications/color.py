"""Colour transfer between photos by a pixel-wise cycle-monotone map in RGB (paper, Appendix C.6).

The source ``P`` is the distribution of the content image's pixel colours, the target ``Q`` that of
the palette image; both are points of ``[0, 1]^3``. W2GN is trained on minibatches of random pixels
(so the palette's size never matters) and the fitted ``grad psi_theta`` is then applied to every
pixel of the content image, ``grad psi_omega`` to every pixel of the palette image (the inverse
transfer). Images are held as their integer samples; applying streams over chunks of rows, so the
extra memory is one output image plus one chunk of network activations, whatever the photo's size.
"""

from __future__ import annotations

import contextlib
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

#: Appendix C.6 as the paper prints it (``w2gn color-transfer --paper``): Dense ICNN [3; 128; 128, 64] (rank 3),
#: 5000 iterations of 1024 pixels after 1000 identity-pretraining steps, Adam lr 1e-3 (constant), cycle weight
#: lambda = 3, L1 penalty 1e-10 on the weights, the one-sided correlations, the photos' own RGB coordinates,
#: and the network applied to every (distinct) colour of the photo.
C6_SETTINGS: dict[str, Any] = {
    "iterations": 5000,
    "batch_size": 1024,
    "lr": 1e-3,
    "lr_schedule": "constant",
    "lambda_cycle": 3.0,
    "hidden": [128, 128, 64],
    "rank": 3,
    "l1_penalty": 1e-10,
    "pretrain_iterations": 1000,
    "precondition": "none",
    "correlation_on": "theta",
    "gradient_mode": "autograd",
    "lut_size": 0,
    "threads": 0,
}

#: ``w2gn color-transfer``'s (and :func:`fit_color_transfer`'s, :func:`recolor`'s) defaults: the one place they
#: live. C.6's network type (Dense ICNN, rank 3, L1 1e-10) fitted the way a 3-D problem needs; every choice was
#: measured on the 10-megapixel pair of benchmarks/color_transfer.py by the palette's sliced W2 after the fit
#: (before: 0.1527; C.6 as printed, 5000 steps: 0.0117), BENCHMARKS.md "Colour transfer of a 10-megapixel pair":
COLOR_DEFAULTS: dict[str, Any] = {
    **C6_SETTINGS,
    # the Bures frame: the closed-form (Gaussian) OT map between the two palettes is the identity there,
    # so the identity pretraining starts the network at the best linear map (alone: 0.0392, -74 %)
    # and training learns only the non-linear remainder
    "precondition": "bures",
    # a 3-D map needs no [128; 128, 64]: after 800 steps [32; 32] reached 0.0166 where [64; 64, 32] reached
    # 0.0215-0.0245 and [16; 16] 0.0186 (one-sided, lambda 3), at a fraction of the cost per step
    "hidden": [32, 32],
    # 2e-2 collapsed to a constant map; 1e-2 with the cosine decay did not
    "lr": 1e-2,
    "lr_schedule": "cosine",
    # both correlation terms (each map learns from its own correlations) with a light cycle weight: 0.0102
    # after 1000 steps of 256 pixels, where the one-sided objective reached 0.0229 (lambda 1) and 0.0134
    # (lambda 3, 1500 steps of 512); lambda 10 reached 0.026
    "correlation_on": "both",
    "lambda_cycle": 1.0,
    "iterations": 1000,
    "batch_size": 256,
    "pretrain_iterations": 200,
    # the Dense ICNN's explicit gradient: the same objective, one plain backward per step
    "gradient_mode": "analytic",
    # apply through a 65^3 look-up table (color_lut): 274,625 network evaluations instead of one per distinct
    # colour (4.5 million in the 10-megapixel photo, block by block). On the fitted map of that photo (0.6 MP
    # subsample): within one 8-bit level of the exact map on 99.7 % of the pixels, mean 0.054 levels, max 5;
    # 33^3 was off by more than one level on 3.5 % (max 9), 129^3 on 0.03 % (max 3) at 7x the nodes
    "lut_size": 65,
    # one torch thread: a step multiplies 256 x 32 matrices and the table's interpolation is memory-bound, too
    # little work to share; with torch's default two threads on the shared 2-core machine (load ~5) the same fit
    # took 144 CPU-s (247 s wall) instead of 14 (43 s), and applying 35 CPU-s instead of ~1
    "threads": 1,
}

#: keys of :data:`COLOR_DEFAULTS` that are not W2GN settings: :func:`recolor`'s table, and the torch threads that
#: :func:`fit_color_transfer` and :func:`recolor` set while they run (0: torch's own setting)
APPLY_KEYS = ("lut_size", "threads")


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block on ``n`` torch threads (``0``/``None``: leave torch's setting), restored afterwards."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if n:
            torch.set_num_threads(before)

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
        :class:`~w2gn.solvers.W2GNConfig` fields overriding :data:`COLOR_DEFAULTS` (``**C6_SETTINGS``: the
        paper's C.6; ``lut_size`` is :func:`recolor`'s and ignored here; ``threads``: torch threads while
        training, restored afterwards, 0 = leave torch's setting).

    Returns
    -------
    TransportMap
        ``forward`` recolours content colours with the palette's; ``inverse`` does the reverse.
        Inputs and outputs are RGB rows in ``[0, 1]``.
    """
    merged = {**COLOR_DEFAULTS, **options}
    opts = {k: v for k, v in merged.items() if k not in APPLY_KEYS}
    solver = W2GNSolver(**opts)
    seed = int(opts.get("seed", 0))
    if time_budget:
        callback = TimeBudget(solver, time_budget, then=callback)
    with torch_threads(merged.get("threads")):
        fitted = solver.fit(PixelSampler(content, "content", seed), PixelSampler(palette, "palette", seed + 1),
                            callback=callback)
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


def color_map(fitted: TransportMap, inverse: bool = False):
    """The colour map of ``fitted`` as a function of RGB rows ``(N, 3)`` in ``[0, 1]`` (tensors in the map's
    device and dtype), unclipped: ``grad psi_theta`` (or ``grad psi_omega`` if ``inverse``) with the fit's
    frame (:mod:`w2gn.affine_frame`) folded in. Checks that ``fitted`` is a map of RGB colours."""
    from ..errors import W2GNUserError

    if tuple(fitted.event_shape) != (3,):
        raise W2GNUserError(f"the map is for samples of shape {fitted.event_shape}, not RGB colours (3,)")
    pot = fitted.inverse_potential if inverse else fitted.forward_potential
    if pot is None:
        raise W2GNUserError("the map has no inverse network; fit it with method 'w2gn' to recolour the palette image")
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
    return grad


def color_lut(fitted: TransportMap, size: int = 33, inverse: bool = False, chunk_pixels: int = CHUNK_PIXELS) -> torch.Tensor:
    """The colour map evaluated on a regular ``size^3`` grid of RGB: a 3-D look-up table ``(size, size, size, 3)``.

    Node ``[i, j, k]`` holds the map (:func:`color_map`) at colour ``(i, j, k) / (size - 1)``, not clipped:
    :func:`apply_lut` interpolates the smooth map trilinearly and the caller clips afterwards, so the kink of
    the clipping is not smeared over a grid cell. The map is the gradient of a
    convex potential, so a regular grid reproduces it to within one 8-bit level almost everywhere (measured in
    ``tests/test_color_transfer.py`` and ``benchmarks/color_transfer.py``): ``65^3 = 274,625`` evaluations
    replace one per pixel (or per distinct colour) of the photo."""
    if int(size) < 2:
        raise ValueError(f"a colour look-up table needs at least 2 nodes per axis, got {size}")
    size = int(size)
    grad = color_map(fitted, inverse)
    axis = torch.linspace(0.0, 1.0, size, dtype=torch.float64)
    nodes = torch.cartesian_prod(axis, axis, axis)  # (size^3, 3), R slowest, B fastest
    out = torch.empty(nodes.shape, dtype=torch.float32)
    for s in range(0, nodes.shape[0], chunk_pixels):
        x = nodes[s : s + chunk_pixels].to(device=fitted.device, dtype=fitted.dtype)
        out[s : s + chunk_pixels] = grad(x).float().cpu()
    return out.reshape(size, size, size, 3)


def apply_lut(table: torch.Tensor, colors: torch.Tensor) -> torch.Tensor:
    """Trilinear interpolation of a :func:`color_lut` table at RGB rows ``colors`` ``(N, 3)`` in ``[0, 1]``.

    Returns ``(N, 3)`` float32. One ``grid_sample`` call (``align_corners=True``: the outer nodes sit on
    0 and 1), so it costs well under a microsecond per pixel on a CPU core."""
    inp = table.permute(3, 0, 1, 2).unsqueeze(0)  # (1, 3, D=R, H=G, W=B)
    # grid_sample reads (x, y, z) = (W, H, D) = (B, G, R) in [-1, 1]
    grid = colors.to(torch.float32).flip(1).mul(2.0).sub_(1.0).view(1, 1, 1, -1, 3)
    out = torch.nn.functional.grid_sample(inp, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.view(3, -1).T


def recolor(
    fitted: TransportMap,
    image: np.ndarray,
    inverse: bool = False,
    chunk_pixels: int = CHUNK_PIXELS,
    progress: bool = True,
    desc: str = "apply",
    dedupe: bool = True,
    lut_size: int | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Apply a colour map to every pixel of ``image`` and return the recoloured ``uint8`` image.

    ``image`` is an integer ``(H, W, 3)`` array (``uint8``/``uint16``). Rows are streamed in blocks:
    each block's colours are converted to the map's dtype, mapped (``grad psi_theta``, or
    ``grad psi_omega`` if ``inverse``) in batches of ``chunk_pixels``, clipped to ``[0, 1]`` and
    rounded into the output. Memory beyond the output image is one block, whatever the image size.

    ``lut_size`` (``None``: :data:`COLOR_DEFAULTS`' 65; ``0``: the exact map): map through a ``lut_size^3``
    look-up table (:func:`color_lut`, interpolated trilinearly by :func:`apply_lut`): the network runs on
    the grid's nodes only, so applying costs well under a microsecond per pixel whatever the network;
    the result is within one 8-bit level of the exact map on nearly every pixel (99.7 % of a
    10-megapixel photo at 65^3, BENCHMARKS.md).

    ``threads``: torch threads while applying (``None``: :data:`COLOR_DEFAULTS`'; 0: torch's setting).

    With ``dedupe`` (8-bit images, exact map only), each block's distinct colours are mapped once and
    scattered back: the result is identical (the map is pixel-wise) but photos repeat colours a lot,
    so this is several times faster.
    """
    from ..errors import W2GNUserError

    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise W2GNUserError(f"expected an (H, W, 3) RGB image, got shape {a.shape}")
    if chunk_pixels <= 0:
        raise W2GNUserError(f"chunk_pixels must be positive, got {chunk_pixels}")
    if lut_size is None:
        lut_size = int(COLOR_DEFAULTS["lut_size"])
    if lut_size < 0 or lut_size == 1:
        raise W2GNUserError(f"lut_size must be 0 (exact map) or at least 2, got {lut_size}")
    grad = color_map(fitted, inverse)
    scale = np.float32(1.0 / full_scale(a))
    device, dtype = fitted.device, fitted.dtype
    with torch_threads(COLOR_DEFAULTS["threads"] if threads is None else threads):
        table = color_lut(fitted, lut_size, inverse, chunk_pixels) if lut_size else None
    dedupe = dedupe and a.dtype == np.uint8 and table is None

    def map_colors(colors: np.ndarray) -> np.ndarray:
        out = np.empty(colors.shape, dtype=np.uint8)
        for s in range(0, colors.shape[0], chunk_pixels):
            x = torch.from_numpy(colors[s : s + chunk_pixels].astype(np.float32) * scale)
            if table is not None:
                y = apply_lut(table, x)
            else:
                y = grad(x.to(device=device, dtype=dtype))
            out[s : s + chunk_pixels] = y.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8).cpu().numpy()
        return out

    h, w = a.shape[:2]
    # the table path interpolates every pixel (cheaper than finding each block's distinct colours)
    block = max(chunk_pixels, 1 << 17) if dedupe or table is not None else chunk_pixels
    rows = max(1, block // w)
    out = np.empty((h, w, 3), dtype=np.uint8)
    with torch_threads(COLOR_DEFAULTS["threads"] if threads is None else threads), \
            tqdm(total=h * w, unit="px", unit_scale=True, disable=not progress, desc=desc, leave=False) as bar:
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
