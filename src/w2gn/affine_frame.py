"""The affine frame: the coordinates a map is trained in, so that shifts and scales of the data do not matter.

Optimal transport for the quadratic cost only depends on the bilinear term ``<x, y>`` (the squared
norms are constants of the plan). So for means ``m_p, m_q``, positive scalars ``s_p, s_q`` and any
invertible matrix ``N``, the change of coordinates (column vectors)

    x~ = s_p N (x - m_p),        y~ = s_q N^{-T} (y - m_q)

changes the cost by an affine function of ``<x, y>`` only, and the optimal plan between ``P~``, ``Q~`` is
the image of the one between ``P``, ``Q``. If ``grad phi`` is the OT map between ``P~`` and ``Q~``,
the OT map in the user's coordinates is

    T(x) = m_q + N^T grad phi(x~) / s_q = grad_x [ phi(x~) / (s_p s_q) + <m_q, x> ],

again the gradient of a convex function (Brenier), and the inverse is
``T^{-1}(y) = m_p + N^{-1} grad phi*(y~) / s_p``. A solver trains in the tilde coordinates and the
fitted map folds the frame back in, so users only ever see their own coordinates.

Two choices of frame (``mode``):

* ``"standardize"``: ``N = I``; each side centred and divided by its root-mean-square deviation, so
  translations and global scales of ``P`` or ``Q`` leave the training problem unchanged exactly.
* ``"diagonal"`` (default of :class:`~w2gn.solvers.SolverConfig`): ``N = diag(sqrt(sd_q,k / sd_p,k))``, so
  that coordinate ``k`` of both sides has the geometric mean ``sqrt(sd_p,k sd_q,k)`` of the two
  deviations: shifts, global scales and per-coordinate scales of either side are undone as far as
  the problem allows (the product ``sd_p,k sd_q,k`` is invariant under any such change), without
  mixing coordinates.
* ``"bures"``: ``N = A^{1/2}`` with ``A`` the OT map
  between Gaussian fits of ``P`` and ``Q`` (Bures map, ``A S_p A = S_q``). Then
  ``Cov(x~) = s_p^2 A^{1/2} S_p A^{1/2}`` and ``Cov(y~) = s_q^2 A^{-1/2} S_q A^{-1/2}`` are the same
  matrix up to the scalars: the best affine map between ``P~`` and ``Q~`` is the identity, which is
  where W2GN's identity pretraining (C.1) starts. The network learns only the non-linear remainder,
  and any affine change of the data (per-coordinate scales included) reaches the solver as the same
  well-conditioned problem up to a rotation.

Covariances are shrunk by ``ridge`` times their mean eigenvalue before the square roots, so
degenerate data (constant columns, fewer samples than dimensions) give a valid, bounded frame.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .distributions import Sampler
from .errors import W2GNUserError
from .linalg import inv_sqrtm_psd, sqrtm_psd

#: array samplers with at most this many rows are summarised exactly, from every row
_ALL_ROWS = 200_000
#: frame choices accepted by :func:`estimate_frame` (``"none"``: train in the user's coordinates)
FRAME_MODES = ("none", "standardize", "diagonal", "bures")


class AffineFrame:
    """``x~ = s_p (x - m_p) N^T`` and ``y~ = s_q (y - m_q) N^{-1}`` on rows, and back (float64 inside).

    Attributes: ``mean_p``, ``mean_q`` (``(D,)``), ``matrix`` ``N`` and ``matrix_inv`` ``N^{-1}``
    (``(D, D)``), ``scale_p``, ``scale_q`` (floats), ``mode`` (how it was estimated).
    """

    def __init__(self, mean_p: torch.Tensor, mean_q: torch.Tensor, matrix: torch.Tensor, matrix_inv: torch.Tensor,
                 scale_p: float, scale_q: float, mode: str = "bures") -> None:
        d = mean_p.shape[0]
        if mean_q.shape != (d,) or matrix.shape != (d, d) or matrix_inv.shape != (d, d):
            raise ValueError("frame: means must be (D,) and matrices (D, D)")
        if not (scale_p > 0 and scale_q > 0 and math.isfinite(scale_p) and math.isfinite(scale_q)):
            raise ValueError(f"frame: scales must be positive and finite, got {scale_p}, {scale_q}")
        f64 = torch.float64
        self.mean_p, self.mean_q = mean_p.detach().to(f64).cpu(), mean_q.detach().to(f64).cpu()
        self.matrix, self.matrix_inv = matrix.detach().to(f64).cpu(), matrix_inv.detach().to(f64).cpu()
        self.scale_p, self.scale_q = float(scale_p), float(scale_q)
        self.mode = mode

    @property
    def dim(self) -> int:
        return int(self.mean_p.shape[0])

    # ----------------------------------------------------------------------- coordinate changes
    def _apply(self, x: torch.Tensor, shift: torch.Tensor | None, mat: torch.Tensor, factor: float,
               add: torch.Tensor | None) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        dt = flat.dtype if flat.dtype in (torch.float32, torch.float64) else torch.float32
        m = mat.to(flat.device, dt)
        if shift is not None:
            flat = flat - shift.to(flat.device, dt)
        out = (flat @ m) * factor
        if add is not None:
            out = out + add.to(flat.device, dt)
        return out.reshape(x.shape)

    def to_source(self, x: torch.Tensor) -> torch.Tensor:
        """User source rows ``x`` -> training coordinates ``x~ = s_p (x - m_p) N^T``."""
        return self._apply(x, self.mean_p, self.matrix.T, self.scale_p, None)

    def to_target(self, y: torch.Tensor) -> torch.Tensor:
        """User target rows ``y`` -> training coordinates ``y~ = s_q (y - m_q) N^{-1}``."""
        return self._apply(y, self.mean_q, self.matrix_inv, self.scale_q, None)

    def from_source(self, xt: torch.Tensor) -> torch.Tensor:
        """Training coordinates ``x~`` -> user source rows ``m_p + x~ N^{-T} / s_p``."""
        return self._apply(xt, None, self.matrix_inv.T, 1.0 / self.scale_p, self.mean_p)

    def from_target(self, yt: torch.Tensor) -> torch.Tensor:
        """Training coordinates ``y~`` -> user target rows ``m_q + y~ N / s_q``."""
        return self._apply(yt, None, self.matrix, 1.0 / self.scale_q, self.mean_q)

    # ------------------------------------------------------------------------ potentials
    @property
    def potential_factor(self) -> float:
        """``1 / (s_p s_q)``: user potential ``psi(x) = phi(x~) / (s_p s_q) + <m_q, x>``."""
        return 1.0 / (self.scale_p * self.scale_q)

    def source_potential(self, x: torch.Tensor, phi_tilde: torch.Tensor) -> torch.Tensor:
        """``psi_theta(x) = phi(x~) / (s_p s_q) + <m_q, x>`` from the trained potential's values ``phi(x~)``."""
        flat = x.reshape(x.shape[0], -1).to(phi_tilde.dtype)
        return phi_tilde * self.potential_factor + flat @ self.mean_q.to(flat.device, flat.dtype)

    def target_conjugate(self, y: torch.Tensor, conj_tilde: torch.Tensor) -> torch.Tensor:
        """``psi_theta^*(y) = phi^*(y~) / (s_p s_q) + <m_p, y> - <m_p, m_q>``: the conjugate of
        :meth:`source_potential`'s ``psi_theta`` from the trained conjugate's values ``phi^*(y~)``."""
        flat = y.reshape(y.shape[0], -1).to(conj_tilde.dtype)
        const = float(self.mean_p @ self.mean_q)
        return conj_tilde * self.potential_factor + flat @ self.mean_p.to(flat.device, flat.dtype) - const

    def log_det_inverse_jacobian(self) -> float:
        """``log |det d y~ / d y| + log |det d x / d x~|`` = ``-2 log|det N| + D log(s_q / s_p)``: what the
        change of variables adds to a log density computed in the training coordinates."""
        _, logdet = torch.linalg.slogdet(self.matrix)
        return float(-2.0 * logdet + self.dim * math.log(self.scale_q / self.scale_p))

    # --------------------------------------------------------------------------- files
    def state(self) -> dict[str, Any]:
        """Plain data + CPU tensors for a map file."""
        return {"mode": self.mode, "mean_p": self.mean_p.clone(), "mean_q": self.mean_q.clone(),
                "matrix": self.matrix.clone(), "matrix_inv": self.matrix_inv.clone(),
                "scale_p": self.scale_p, "scale_q": self.scale_q}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AffineFrame:
        return cls(state["mean_p"], state["mean_q"], state["matrix"], state["matrix_inv"],
                   float(state["scale_p"]), float(state["scale_q"]), str(state.get("mode", "bures")))

    def __repr__(self) -> str:
        return f"AffineFrame(mode={self.mode!r}, dim={self.dim}, scale_p={self.scale_p:.4g}, scale_q={self.scale_q:.4g})"


def _moments(sampler: Sampler, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (float64) of ``sampler``: of all its rows when it holds
    at most ``max(n, 200000)`` of them (exact, no sampling noise), else of ``n`` draws, in chunks."""
    chunks: list[torch.Tensor]
    # samplers over a fixed set of rows (in memory or a mapped file) expose them as row_blocks
    if hasattr(sampler, "row_blocks") and len(sampler) <= max(n, _ALL_ROWS):  # type: ignore[arg-type]
        chunks = list(sampler.row_blocks())  # type: ignore[attr-defined]
    else:
        chunks = [sampler.sample(min(8192, n - s), generator).reshape(-1, sampler.dim) for s in range(0, n, 8192)]
    d = sampler.dim
    dev = chunks[0].device
    total = torch.zeros(d, dtype=torch.float64, device=dev)
    rows = 0
    for c in chunks:
        total += c.to(torch.float64).sum(0)
        rows += c.shape[0]
    mean = total / rows
    cov = torch.zeros(d, d, dtype=torch.float64, device=dev)
    for c in chunks:
        z = c.to(torch.float64) - mean
        cov += z.T @ z
    return mean, cov / max(rows - 1, 1)


def _shrink(cov: torch.Tensor, ridge: float) -> torch.Tensor:
    """``cov + ridge * mean eigenvalue * I`` (a floor for degenerate covariances)."""
    d = cov.shape[0]
    level = float(torch.trace(cov)) / d
    if not level > 0:  # every coordinate constant: nothing to whiten, keep unit scale
        level = 1.0
    return cov + ridge * level * torch.eye(d, dtype=cov.dtype, device=cov.device)


def estimate_frame(p: Sampler, q: Sampler, mode: str = "bures", seed: int = 0, n: int | None = None,
                   ridge: float = 1e-6) -> AffineFrame | None:
    """The frame that a solver trains in, from samples of ``p`` and ``q`` (``None`` for ``mode="none"``
    or for non-vector samples such as images, which keep their pixel coordinates).

    ``n`` rows per side (default ``clamp(50 D, 20000, 100000)``; all rows of an array sampler that
    holds at most ``max(n, 200000)``) are drawn with a generator of their own seeded by ``seed``, so the training stream is
    not consumed and a resumed run estimates the same frame. Cost: ``O(n D^2 + D^3)``.
    """
    if mode not in FRAME_MODES:
        raise W2GNUserError(f"precondition must be one of {', '.join(FRAME_MODES)}, got {mode!r}")
    if mode == "none" or len(tuple(p.event_shape)) != 1:
        return None
    d = p.dim
    n = int(n or min(max(50 * d, 20_000), 100_000))
    gen = torch.Generator(device=p.device).manual_seed(int(seed) * 7919 + 104_729)
    mp, cp = _moments(p, n, gen)
    gen_q = torch.Generator(device=q.device).manual_seed(int(seed) * 7919 + 1_299_709)
    mq, cq = _moments(q, n, gen_q)
    cp, cq = _shrink(cp, ridge), _shrink(cq, ridge)
    eye = torch.eye(d, dtype=torch.float64, device=cp.device)
    if mode == "standardize":
        mat, mat_inv = eye, eye
        var_p, var_q = float(torch.trace(cp)) / d, float(torch.trace(cq)) / d
    elif mode == "diagonal":
        # per coordinate, both sides get the geometric mean of their deviations: N = diag(sqrt(sd_q / sd_p))
        ratio = (torch.diagonal(cq) / torch.diagonal(cp)).sqrt().sqrt()
        mat, mat_inv = torch.diag(ratio), torch.diag(1.0 / ratio)
        var_p = float((torch.diagonal(cp) * ratio**2).sum()) / d
        var_q = float((torch.diagonal(cq) / ratio**2).sum()) / d
    else:
        root_p, inv_root_p = sqrtm_psd(cp), inv_sqrtm_psd(cp)
        a = inv_root_p @ sqrtm_psd(root_p @ cq @ root_p) @ inv_root_p  # Bures map: A S_p A = S_q
        mat, mat_inv = sqrtm_psd(a), inv_sqrtm_psd(a)
        var_p = float(torch.trace(mat @ cp @ mat)) / d
        var_q = float(torch.trace(mat_inv @ cq @ mat_inv)) / d
    if not (var_p > 0 and var_q > 0 and math.isfinite(var_p) and math.isfinite(var_q)):
        raise W2GNUserError("could not estimate a frame for these samples (degenerate or non-finite statistics)")
    return AffineFrame(mp, mq, mat, mat_inv, 1.0 / math.sqrt(var_p), 1.0 / math.sqrt(var_q), mode)


class FramedSampler(Sampler):
    """A sampler seen through one side of an :class:`AffineFrame` (what the solver trains on)."""

    def __init__(self, inner: Sampler, frame: AffineFrame, side: str) -> None:
        if side not in ("source", "target"):
            raise ValueError("side must be 'source' or 'target'")
        self.inner = inner
        self.frame = frame
        self.side = side
        self.event_shape = tuple(inner.event_shape)
        self.device, self.dtype = inner.device, inner.dtype

    def _moved(self) -> None:
        self.inner.to(self.device, self.dtype)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        x = self.inner.sample(n, generator)
        out = self.frame.to_source(x) if self.side == "source" else self.frame.to_target(x)
        return out.to(x.dtype)

    def describe(self) -> dict:
        # the data's identity, not the frame's: a resumed run recognises the same data
        return self.inner.describe()

    def state_dict(self) -> dict[str, Any]:
        return dict(self.inner.state_dict()) if hasattr(self.inner, "state_dict") else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if hasattr(self.inner, "load_state_dict"):
            self.inner.load_state_dict(state)


__all__ = ["FRAME_MODES", "AffineFrame", "FramedSampler", "estimate_frame"]
