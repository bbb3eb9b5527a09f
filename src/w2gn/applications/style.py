"""Unpaired image-to-image style transfer with two Conv ICNNs (paper, Section 5.3 and Appendix C.8).

Two collections of images ``A`` and ``B`` are two distributions on ``R^{C x h x w}`` (random
``h x w`` crops); W2GN fits ``grad psi_theta: A -> B`` and ``grad psi_omega: B -> A`` with both cycle
terms (eq. 11 and eq. 51), ``lambda = 35000`` and an L1 weight penalty, after pretraining
``psi_theta`` to the identity and copying it into ``psi_omega`` (:class:`~w2gn.solvers.W2GNSolver`
does both). Pixels are in ``[-1, 1]``.

Because :class:`~w2gn.networks.ConvICNN` pools globally (and scales by the area), a map trained on
crops translates whole images of any size.

>>> from w2gn.applications.style import train_style_transfer          # doctest: +SKIP
>>> fitted, solver = train_style_transfer("summer/", "winter/", "run/")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..distributions.images import ImageCropSampler, PrefetchSampler
from ..errors import W2GNUserError
from ..fitted_map import TransportMap
from ..io.atomic import atomic_path
from ..io.image_folders import to_uint8
from ..metrics.images import image_distances
from ..networks import ConvICNN
from ..solvers import Callback, TimeBudget, W2GNSolver

#: the paper's settings (C.8 and the reference notebook): 128x128 crops of 256x256 images, 128-channel
#: Conv ICNN with four convolutions per linear stack, batch 8, 20000 steps, lambda 35000, L1 1e-10
PAPER_SETTINGS: dict[str, Any] = {
    "crop": 128,
    "load_size": None,
    "features": 128,
    "linear_depth": 4,
    "strided_layers": 5,
    "dense": [128, 64, 32],
    "batch_size": 8,
    "iterations": 20000,
    "lr": 1e-4,
    "lambda_cycle": 35000.0,
    "l1_penalty": 1e-10,
    "pretrain_iterations": 1000,
}

#: defaults small enough for a CPU: images resized to 128 pixels (so a 64-pixel crop covers the same
#: part of the scene as the paper's 128 of 256), 16-channel network, 1000 steps
CPU_DEFAULTS: dict[str, Any] = {
    **PAPER_SETTINGS,
    "crop": 64,
    "load_size": 128,
    "features": 16,
    "linear_depth": 2,
    "iterations": 1000,
    "pretrain_iterations": 200,
}


def style_potential(
    channels: int = 3,
    features: int = 32,
    linear_depth: int = 2,
    strided_layers: int = 5,
    dense: Sequence[int] = (128, 64, 32),
    strong_convexity: float = 1e-6,
    seed: int = 0,
    identity_init: float | None = 0.05,
) -> ConvICNN:
    """The Conv ICNN potential of B.3 for ``channels``-channel images (``features`` per convolution).

    ``identity_init``: start near ``grad psi = identity`` with this much of the random initialisation
    mixed in (:meth:`~w2gn.networks.ConvICNN.reset_identity`), so that the identity pretraining of C.1
    converges in a few steps instead of leaving a blurring map; ``None``: the plain random start.
    """
    net = ConvICNN(channels=channels, features=features, linear_depth=linear_depth, strided_layers=strided_layers,
                   dense=tuple(dense), strong_convexity=strong_convexity, seed=seed)
    if identity_init is not None:
        if features < channels:
            raise W2GNUserError(f"features ({features}) must be at least the number of channels ({channels})")
        net.reset_identity(identity_init, seed=seed)
    return net


def style_solver(**options: Any) -> W2GNSolver:
    """A :class:`W2GNSolver` with the C.8 objective: both cycle terms, ``lambda = 35000``, L1 ``1e-10``,
    Adam ``lr = 1e-4``, batch 8. ``options`` override any :class:`~w2gn.solvers.W2GNConfig` field."""
    base = {k: PAPER_SETTINGS[k] for k in ("batch_size", "iterations", "lr", "lambda_cycle", "l1_penalty", "pretrain_iterations")}
    # the paper's one-sided correlations: the two-sided default would double the cost of every ConvICNN step
    return W2GNSolver(**{**base, "cycle_x": True, "cycle_y": True, "correlation_on": "theta", **options})


# ------------------------------------------------------------------------------------ applying


def translate(fitted: TransportMap, images: Sequence[torch.Tensor] | torch.Tensor, inverse: bool = False,
              batch_size: int = 4) -> list[torch.Tensor]:
    """Translate images ``(C, H, W)`` in ``[-1, 1]`` (or ``uint8``) with ``grad psi_theta`` (A -> B) or,
    with ``inverse``, ``grad psi_omega`` (B -> A). Images of equal size are batched together; any size
    works. Returns float tensors in the map's dtype on the CPU (values may leave ``[-1, 1]``)."""
    check_image_map(fitted)
    pot = fitted.inverse_potential if inverse else fitted.forward_potential
    if pot is None:
        raise W2GNUserError("this map has no conjugate network, so it cannot translate B -> A")
    items = [im.to(torch.float32) / 127.5 - 1.0 if im.dtype == torch.uint8 else im for im in images]
    channels = pot.channels  # type: ignore[attr-defined]
    for i, im in enumerate(items):
        if im.dim() != 3 or im.shape[0] != channels:
            raise W2GNUserError(f"image #{i} has shape {tuple(im.shape)}; the map expects {channels}-channel images (C, H, W)")
    out: list[torch.Tensor | None] = [None] * len(items)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(items):
        by_size.setdefault((im.shape[1], im.shape[2]), []).append(i)
    for idx in by_size.values():
        res = pot.map(torch.stack([items[i] for i in idx]), batch_size).cpu()
        for i, r in zip(idx, res):
            out[i] = r
    return out  # type: ignore[return-value]


def check_image_map(fitted: TransportMap) -> None:
    """Raise :class:`W2GNUserError` unless ``fitted`` maps images (a Conv ICNN map)."""
    if not isinstance(fitted.forward_potential, ConvICNN):
        raise W2GNUserError(
            f"the map is for samples of shape {fitted.event_shape}, not images; train one with 'w2gn style-transfer'"
        )


def cycle_error(fitted: TransportMap, x: torch.Tensor, inverse: bool = False, batch_size: int = 16) -> float:
    """Cycle error per pixel, ``E ||grad psi_omega(grad psi_theta(x)) - x||^2 / (H W)``.

    The squared error is summed over the channels and averaged over pixels and images; with
    ``inverse`` the cycle starts on the target side, ``grad psi_theta(grad psi_omega(y))``. ``x``:
    ``(N, C, H, W)`` in ``[-1, 1]``.
    """
    first, second = fitted.forward_potential, fitted.inverse_potential
    if inverse:
        first, second = second, first
    if first is None or second is None:
        raise W2GNUserError("the cycle error needs a map with both networks (method 'w2gn')")
    back = second.map(first.map(x, batch_size), batch_size).to(x.device, torch.float64)
    return float((back - x.to(torch.float64)).square().sum(dim=1).mean())


def evaluate(fitted: TransportMap, a: torch.Tensor, b: torch.Tensor, batch_size: int = 16, seed: int = 0,
             fid_features: Callable[[torch.Tensor], Any] | None = None) -> dict[str, Any]:
    """Quantitative checks of a style map on crops ``a`` ``(N, C, h, w)`` of A and ``b`` of B.

    Per direction: the cycle error per pixel (:func:`cycle_error`) and the image distances
    (:func:`~w2gn.metrics.images.image_distances`) from the translated images to the other set,
    beside the same distances for the untranslated images. Translation helps where
    ``translated < untranslated``.

    ``fid_features``: a feature extractor for images in ``[0, 1]`` (e.g.
    :class:`~w2gn.metrics.fid.InceptionFeatures`); with it every distance set also gets ``"fid"``
    (:func:`~w2gn.metrics.fid.fid_from_features`). FID is biased upwards at small sample sizes:
    compare translated with untranslated only (same sizes).
    """
    ta = fitted.forward_potential.map(a, batch_size).cpu()
    tb = fitted.inverse_potential.map(b, batch_size).cpu() if fitted.inverse_potential is not None else None
    feats: dict[str, Any] = {}
    if fid_features is not None:
        # features of each set once; the map's output may leave [-1, 1], the extractor clamps to [0, 1]
        for name, imgs in (("a", a), ("b", b), ("ta", ta), ("tb", tb)):
            if imgs is not None:
                feats[name] = fid_features((imgs.detach().cpu().float() + 1.0) / 2.0)

    def distances(x: torch.Tensor, y: torch.Tensor, fx: str, fy: str) -> dict[str, float]:
        d = image_distances(x, y, seed=seed)
        if feats:
            from ..metrics.fid import fid_from_features

            d["fid"] = fid_from_features(feats[fx], feats[fy])
        return d

    res: dict[str, Any] = {
        "a_to_b": {
            "cycle_error_per_pixel": cycle_error(fitted, a, False, batch_size),
            "translated": distances(ta, b, "ta", "b"),
            "untranslated": distances(a, b, "a", "b"),
        }
    }
    if tb is not None:
        res["b_to_a"] = {
            "cycle_error_per_pixel": cycle_error(fitted, b, True, batch_size),
            "translated": distances(tb, a, "tb", "a"),
            "untranslated": distances(b, a, "b", "a"),
        }
    return res


def metrics_markdown(metrics: dict[str, Any]) -> str:
    """A Markdown table of :func:`evaluate`'s result."""
    lines = ["| direction | cycle error / pixel | distance | untranslated | translated |", "|---|---|---|---|---|"]
    for direction, m in metrics.items():
        for k in m["untranslated"]:
            lines.append(f"| {direction.replace('_', ' ')} | {m['cycle_error_per_pixel']:.4g} | {k} | "
                         f"{m['untranslated'][k]:.4f} | {m['translated'].get(k, float('nan')):.4f} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------- training


def save_grid(path: str | os.PathLike, rows: Sequence[torch.Tensor], labels: Sequence[str], title: str = "") -> Path:
    """Save image rows ``(k, C, h, w)`` (one row per tensor, e.g. input / translated / cycled back,
    as Figures 4, 20, 21) as a labelled PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = rows[0].shape[0]
    cell = max(int(rows[0].shape[-2]), 48) / 72.0  # about one screen pixel per image pixel at 72 dpi
    fig, axes = plt.subplots(len(rows), k, figsize=(cell * k + 0.3, cell * len(rows) + (0.3 if title else 0)), squeeze=False)
    for r, (imgs, label) in enumerate(zip(rows, labels)):
        for j in range(k):
            ax = axes[r][j]
            im = to_uint8(imgs[j]).permute(1, 2, 0).numpy()
            ax.imshow(im[:, :, 0] if im.shape[2] == 1 else im, cmap="gray" if im.shape[2] == 1 else None, vmin=0, vmax=255,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout(pad=0.2)
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png", dpi=72)
    plt.close(fig)
    return p


def grid_rows(fitted: TransportMap, a: torch.Tensor, b: torch.Tensor) -> tuple[list[torch.Tensor], list[str]]:
    """Rows of a sample grid: A, A->B, A->B->A, B, B->A, B->A->B."""
    fwd, inv = fitted.forward_potential, fitted.inverse_potential
    ta = fwd.map(a).cpu()
    rows, labels = [a.cpu(), ta, inv.map(ta).cpu()], ["A", "A→B", "A→B→A"]
    tb = inv.map(b).cpu()
    rows += [b.cpu(), tb, fwd.map(tb).cpu()]
    labels += ["B", "B→A", "B→A→B"]
    return rows, labels


class Checkpointer:
    """Training callback: every ``every`` iterations saves the map (``map.pt``), a sample grid
    (``grid_<iteration>.png``) on fixed crops ``a``/``b`` and the history (``history.json``) in
    ``out_dir``, all atomically, so an interrupted run leaves usable files behind."""

    def __init__(self, out_dir: str | os.PathLike, a: torch.Tensor, b: torch.Tensor, every: int = 500,
                 info: dict[str, Any] | None = None, grids: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.a, self.b = a, b
        self.every = int(every)
        self.info = dict(info or {})
        self.grids = grids
        self.history: list[dict[str, float]] = []

    def save(self, iteration: int, fitted: TransportMap, final: bool = False) -> None:
        snapshot = TransportMap(fitted.forward_potential, fitted.inverse_potential, method=fitted.method,
                                info={**fitted.info, **self.info, "iterations": iteration})
        snapshot.save(self.out_dir / "map.pt")
        if self.grids:
            name = "grid_final.png" if final else f"grid_{iteration:06d}.png"
            rows, labels = grid_rows(fitted, self.a.to(fitted.device, fitted.dtype), self.b.to(fitted.device, fitted.dtype))
            save_grid(self.out_dir / name, rows, labels, title=f"iteration {iteration}")
        with atomic_path(self.out_dir / "history.json") as tmp:
            tmp.write_text(json.dumps(self.history, indent=1) + "\n")

    def __call__(self, iteration: int, fitted: TransportMap, stats: dict[str, float],
                 history: Sequence[dict[str, float]] | None = None) -> bool:
        """Record ``stats`` and save when due. ``history``: the solver's whole history instead, which
        a resumed run restores from its checkpoint (this callback's own list starts empty)."""
        if history is not None:
            self.history = [dict(r) for r in history]
        else:
            self.history.append(dict(stats))
        if iteration % self.every == 0:
            self.save(iteration, fitted)
        return False


def train_style_transfer(
    source: ImageCropSampler,
    target: ImageCropSampler,
    out_dir: str | os.PathLike | None = None,
    network: dict[str, Any] | None = None,
    checkpoint_every: int = 500,
    grid_size: int = 6,
    prefetch: int = 2,
    callback: Callback | None = None,
    time_budget: float | None = None,
    **solver_options: Any,
) -> tuple[TransportMap, W2GNSolver]:
    """Fit a style map from crops of ``source`` (A) to crops of ``target`` (B).

    ``network``: keyword arguments of :func:`style_potential` (default :data:`CPU_DEFAULTS`'s
    network); ``solver_options``: :class:`~w2gn.solvers.W2GNConfig` fields (see
    :func:`style_solver`). With ``out_dir`` the map, sample grids and history are written there every
    ``checkpoint_every`` iterations and at the end. ``prefetch`` batches are cut ahead in a background
    thread (0: none). ``callback(iteration, live_map, stats) -> stop?`` is called every ``log_every``
    steps besides the checkpointing; ``time_budget``: seconds of training after which the run ends
    (:class:`~w2gn.solvers.TimeBudget`, ``None`` = none). Returns the fitted map (``info["style"]`` records the
    crop settings) and the solver.

    Resuming uses the solver's checkpoints (:class:`~w2gn.solvers.SolverConfig`): pass
    ``checkpoint_dir`` to write them (every ``checkpoint_every`` steps) and, to continue an interrupted run,
    the same call with ``resume=True``. The checkpoints hold both networks, both Adam states, the
    random state and the position of the prefetched batch streams, so a resumed run continues
    exactly as the uninterrupted one (pretraining is not repeated).
    """
    if source.channels != target.channels:
        raise W2GNUserError(
            f"{source.name} has {source.channels}-channel images but {target.name} has {target.channels}-channel ones; "
            "decode both alike (e.g. --channels 3)"
        )
    if source.crop != target.crop:
        raise W2GNUserError(f"crop sizes differ ({source.crop} vs {target.crop}); use one crop size for both folders")
    net = {k: CPU_DEFAULTS[k] for k in ("features", "linear_depth", "strided_layers", "dense")}
    net.update(network or {})
    if solver_options.get("checkpoint_dir"):
        # one period for map.pt, the grids and the solver's training checkpoints
        solver_options.setdefault("checkpoint_every", checkpoint_every)
    solver = style_solver(**solver_options)
    c = solver.config
    potential = style_potential(source.channels, seed=c.seed, strong_convexity=c.strong_convexity, **net)
    style_info = {"crop": source.crop, "channels": source.channels, "load_size": source.load_size,
                  "source": source.describe(), "target": target.describe()}
    checkpointer = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        g = torch.Generator().manual_seed(c.seed + 12345)
        a = source.sample(grid_size, g, augment=False) if grid_size else source.sample(1, g, augment=False)
        b = target.sample(grid_size, g, augment=False) if grid_size else target.sample(1, g, augment=False)
        checkpointer = Checkpointer(out, a, b, checkpoint_every, {"style": style_info}, grids=bool(grid_size))

    def on_log(iteration: int, live: TransportMap, stats: dict[str, float]) -> bool:
        if checkpointer is not None:
            checkpointer(iteration, live, stats, history=solver.history)
        return bool(callback(iteration, live, stats)) if callback is not None else False

    p: Any = source
    q: Any = target
    if prefetch:
        p = PrefetchSampler(source, c.batch_size, prefetch, seed=c.seed)
        q = PrefetchSampler(target, c.batch_size, prefetch, seed=c.seed + 1)
    try:
        budget = TimeBudget(solver, time_budget, then=on_log) if time_budget else on_log
        fitted = solver.fit(p, q, callback=budget, potential=potential)
    finally:
        for s in (p, q):
            if isinstance(s, PrefetchSampler):
                s.close()
    fitted.info["style"] = style_info
    if checkpointer is not None:
        checkpointer.save(solver.iteration, fitted, final=True)
    return fitted, solver
