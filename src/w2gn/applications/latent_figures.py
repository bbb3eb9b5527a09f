"""Figures of the latent-OT experiment: sample grids (Figures 3/14) and the latent PCA (Figure 15)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..io import atomic_path


def _tile(images: torch.Tensor) -> np.ndarray:
    """``(K, C, S, S)`` -> ``(S, K*S, C)`` row of images with 1-px white gaps."""
    k, c, s, _ = images.shape
    row = np.ones((s, k * (s + 1) - 1, c), dtype=np.float32)
    for i in range(k):
        row[:, i * (s + 1) : i * (s + 1) + s] = images[i].permute(1, 2, 0).clamp(0, 1).cpu().numpy()
    return row


def save_grid(path: Path, first_row: torch.Tensor, second_row: torch.Tensor) -> None:
    """PNG of two image rows: ``Dec(Z)`` above ``Dec(grad psi(Z))`` (same ``Z`` per column)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = _tile(first_row), _tile(second_row)
    gap = np.ones((2, a.shape[1], a.shape[2]), dtype=np.float32)
    img = np.concatenate([a, gap, b], axis=0)
    fig, ax = plt.subplots(figsize=(max(4.0, img.shape[1] / 40), max(1.5, img.shape[0] / 40) + 0.6), dpi=100)
    ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks([a.shape[0] / 2, a.shape[0] + 2 + b.shape[0] / 2], ["Dec(Z)", "Dec(∇ψ(Z))"])
    ax.set_xticks([])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def save_pca(path: Path, z: torch.Tensor, mapped: torch.Tensor, latents: torch.Tensor) -> None:
    """Figure 15: the two main principal components (fitted on the true latents) of ``Z``, ``grad psi(Z)``, latents."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = latents.double()
    mean = lat.mean(0)
    _, _, v = torch.linalg.svd(lat - mean, full_matrices=False)
    basis = v[:2].T

    def proj(t: torch.Tensor) -> np.ndarray:
        return ((t.double() - mean) @ basis).numpy()

    sets = [(proj(z), "Z ~ N(0, I)", "tab:blue"), (proj(mapped), "mapped ∇ψ(Z)", "tab:red"),
            (proj(lat), "autoencoder latents", "tab:green")]
    lim = np.abs(np.concatenate([s[0] for s in sets[1:]])).max() * 1.1
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), dpi=100, sharex=True, sharey=True)
    for ax, (pts, title, color) in zip(axes, sets):
        ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.5, color=color)
        ax.set_title(title)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    axes[0].set_ylabel("PC 2")
    for ax in axes:
        ax.set_xlabel("PC 1")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
