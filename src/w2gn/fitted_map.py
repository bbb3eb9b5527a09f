"""The fitted transport map: what a solver returns, separate from how it was trained.

A :class:`TransportMap` holds the forward potential ``psi_theta`` (``T = grad psi_theta``) and, where
the method trains one, the conjugate potential ``psi_omega`` (``T^{-1} ~ grad psi_omega``). Without a
conjugate network the inverse is computed by solving the conjugate problem numerically.

Methods that fit a map directly rather than a potential (LSOT's barycentric projection) pass a
:class:`~w2gn.networks.MapNetwork` as ``forward_network`` (and optionally ``inverse_network``)
instead; the potential-based quantities (:meth:`TransportMap.potential`, the dual W2 estimate) are
then unavailable, while mapping, saving and loading work the same.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .affine_frame import AffineFrame
from .conjugate import solve_conjugate
from .errors import W2GNUserError
from .io.atomic import atomic_torch_save
from .networks import ConvexPotential, MapNetwork, build_map_network, build_potential, map_network_spec, potential_spec

FORMAT = "w2gn-map"
#: 2: optional direct map networks; 3: an affine frame (:mod:`w2gn.affine_frame`). A file is written with the
#: lowest version that holds it, so older readers load what they can and refuse what they would get wrong.
FORMAT_VERSION = 3


def _to_tensor(x) -> tuple[torch.Tensor, bool]:
    if isinstance(x, torch.Tensor):
        return x, False
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.number):
        raise W2GNUserError(f"expected a numeric array, got dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr)), True


class TransportMap:
    """A fitted optimal transport map between a source ``P`` and a target ``Q``.

    Parameters
    ----------
    forward_potential:
        ``psi_theta``; the forward map is ``grad psi_theta``. May be ``None`` only when
        ``forward_network`` is given.
    inverse_potential:
        ``psi_omega`` (optional); the inverse map is ``grad psi_omega``. If absent, :meth:`inverse`
        solves ``argmax_x <x, y> - psi_theta(x)`` with L-BFGS.
    method:
        Name of the training method (``"w2gn"``, ``"mm1"``, ...), for the record.
    info:
        Plain-data extras: solver configuration, training history, data identity.
    forward_network, inverse_network:
        Direct map networks ``f(x)`` (not gradients), used instead of the potentials for
        :meth:`forward` / :meth:`inverse` when given (LSOT).
    frame:
        The :class:`~w2gn.affine_frame.AffineFrame` the networks were trained in (``None``: the user's
        coordinates). Every method takes and returns the user's coordinates; the frame is folded in:
        ``T(x) = m_q + N^T grad phi_theta(x~) / s_q`` with ``x~ = s_p N (x - m_p)``.

    Notes
    -----
    Every method accepts NumPy arrays or tensors of shape ``(N, *event_shape)`` and returns the same
    kind; large inputs are processed in batches of ``batch_size`` rows without building a graph.
    """

    def __init__(
        self,
        forward_potential: ConvexPotential | None,
        inverse_potential: ConvexPotential | None = None,
        method: str = "w2gn",
        info: dict[str, Any] | None = None,
        *,
        forward_network: MapNetwork | None = None,
        inverse_network: MapNetwork | None = None,
        frame: AffineFrame | None = None,
    ) -> None:
        if forward_potential is None and forward_network is None:
            raise ValueError("a TransportMap needs a forward potential or a forward map network")
        self.forward_potential = forward_potential
        self.inverse_potential = inverse_potential
        self.forward_network = forward_network
        self.inverse_network = inverse_network
        self.frame = frame
        self.method = method
        self.info: dict[str, Any] = dict(info or {})
        self.conjugate_options: dict[str, Any] = {"max_iter": 200, "tol": 1e-5}

    # ----------------------------------------------------------------------------------- helpers
    @property
    def _forward_module(self) -> torch.nn.Module:
        return self.forward_network if self.forward_network is not None else self.forward_potential

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self._forward_module.event_shape)

    @property
    def device(self) -> torch.device:
        return next(self._forward_module.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self._forward_module.parameters()).dtype

    def _modules(self) -> list[torch.nn.Module]:
        return [m for m in (self.forward_potential, self.inverse_potential, self.forward_network,
                            self.inverse_network) if m is not None]

    def _need_potential(self, what: str) -> ConvexPotential:
        if self.forward_potential is None:
            raise W2GNUserError(f"{what} needs a potential, but this {self.method!r} map is a direct map network")
        return self.forward_potential

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> TransportMap:
        """Move every network (in place); returns ``self``."""
        for p in self._modules():
            if p is not None:
                p.to(device=device, dtype=dtype)
        return self

    def _check(self, x: torch.Tensor, what: str) -> None:
        shape = self.event_shape
        if x.dim() != len(shape) + 1 or any(s not in (-1, t) for s, t in zip(shape, x.shape[1:])):
            want = "(N, " + ", ".join("any" if s == -1 else str(s) for s in shape) + ")"
            raise W2GNUserError(f"{what}: expected an array of shape {want}, got {tuple(x.shape)}")
        if x.shape[0] and not bool(torch.isfinite(x).all()):
            raise W2GNUserError(f"{what}: contains NaN or inf values")

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], x, what: str) -> Any:
        t, was_numpy = _to_tensor(x)
        self._check(t, what)
        out = fn(t)
        return out.cpu().numpy() if was_numpy else out

    # ------------------------------------------------------------------------------------- maps
    # ``_*_inner`` work in the training coordinates (the frame's tilde coordinates, or the user's when
    # there is no frame); the public methods fold the frame in.
    def _to_source(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.frame is None else self.frame.to_source(t)

    def _to_target(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.frame is None else self.frame.to_target(t)

    def _from_source(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.frame is None else self.frame.from_source(t)

    def _from_target(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.frame is None else self.frame.from_target(t)

    def forward(self, x, batch_size: int = 8192):
        """``T(x) = grad psi_theta(x)`` (or the forward map network): pushes source samples towards the target."""
        return self._apply(lambda t: self._from_target(self._forward_inner(self._to_source(t), batch_size)),
                           x, "forward input")

    __call__ = forward

    def _forward_inner(self, t: torch.Tensor, batch_size: int) -> torch.Tensor:
        return self._forward_module.map(t, batch_size)

    def inverse(self, y, batch_size: int = 8192):
        """``T^{-1}(y)``: ``grad psi_omega(y)`` if a conjugate network exists, else the numerical
        conjugate ``argmax_x <x, y> - psi_theta(x)`` (L-BFGS, :attr:`conjugate_options`); an inverse
        map network takes precedence when present. With ``conjugate_options["refine_steps"]``, each
        row of ``grad psi_omega(y)`` is refined on the conjugate problem and the better of the two
        points (smaller residual ``||grad psi_theta(x) - y||``) is kept."""
        return self._apply(lambda t: self._from_source(self._inverse_inner(self._to_target(t), batch_size)),
                           y, "inverse input")

    def _inverse_inner(self, t: torch.Tensor, batch_size: int) -> torch.Tensor:
        if self.inverse_network is not None:
            return self.inverse_network.map(t, batch_size)
        if self.inverse_potential is not None:
            if self.conjugate_options.get("refine_steps", 0):
                return self._refined_inverse(t, batch_size)
            return self.inverse_potential.map(t, batch_size)
        return self._solve(t, batch_size)[0]

    def _refined_inverse(self, y: torch.Tensor, batch_size: int) -> torch.Tensor:
        """``grad psi_omega(y)`` improved by ``conjugate_options["refine_steps"]`` steps on the conjugate
        problem of ``psi_theta`` (``refine_method`` ``"lbfgs"`` or ``"newton"``; Amos, ICLR 2023)."""
        from .conjugate import solve_conjugate_newton

        steps = int(self.conjugate_options["refine_steps"])
        newton = self.conjugate_options.get("refine_method", "lbfgs") == "newton"
        outs = [y.new_empty((0, *y.shape[1:]))]
        for s in range(0, y.shape[0], batch_size):
            b = y[s : s + batch_size].to(self.device, self.dtype)
            x0 = self.inverse_potential.map(b, batch_size)
            if newton:
                res = solve_conjugate_newton(self.forward_potential, b, x0=x0, max_iter=steps, tol=0.0)
            else:
                res = solve_conjugate(self.forward_potential, b, x0=x0, max_iter=steps, tol=0.0)
            outs.append(_keep_improved_rows(self.forward_potential, b, x0, res.x).to(y.device, y.dtype))
        return torch.cat(outs)

    def _solve(self, y: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Numerical conjugate per batch: ``(argmax rows, conjugate values)``."""
        xs, vals = [y.new_empty((0, *y.shape[1:]))], [y.new_empty((0,))]
        for s in range(0, y.shape[0], batch_size):
            b = y[s : s + batch_size].to(self.device, self.dtype)
            res = solve_conjugate(self._need_potential("the inverse map"), b, **self.conjugate_options)
            xs.append(res.x.to(y.device, y.dtype))
            vals.append(res.values.to(y.device, y.dtype))
        return torch.cat(xs), torch.cat(vals)

    def potential(self, x, batch_size: int = 8192):
        """``psi_theta(x)``, shape ``(N,)``."""
        pot = self._need_potential("potential()")

        def f(t: torch.Tensor) -> torch.Tensor:
            vals = pot.value(self._to_source(t), batch_size)
            return vals if self.frame is None else self.frame.source_potential(t, vals)

        return self._apply(f, x, "potential input")

    def conjugate_potential(self, y, batch_size: int = 8192):
        """Estimate of the convex conjugate ``psi_theta^*(y) = max_x <x, y> - psi_theta(x)``, shape ``(N,)``.

        Evaluated at ``x_hat = T^{-1}(y)`` (paper eq. 10): ``<x_hat, y> - psi_theta(x_hat)``. This is a
        lower bound that is exact when ``x_hat`` is the true argmax; unlike ``psi_omega(y)`` it has no
        free additive constant.
        """

        self._need_potential("conjugate_potential()")

        def inner(t: torch.Tensor) -> torch.Tensor:
            if self.inverse_potential is None:
                return self._solve(t, batch_size)[1]
            x_hat = self._inverse_inner(t, batch_size)
            psi = self.forward_potential.value(x_hat, batch_size)
            return (x_hat.to(psi.dtype) * t.to(psi.dtype)).flatten(1).sum(dim=1) - psi

        def f(t: torch.Tensor) -> torch.Tensor:
            vals = inner(self._to_target(t))
            return vals if self.frame is None else self.frame.target_conjugate(t, vals)

        return self._apply(f, y, "conjugate input")

    # ---------------------------------------------------------------------------- quantities
    def w2_squared(self, x, y, estimator: str = "dual", batch_size: int = 8192) -> float:
        """Estimate ``W2^2(P, Q) = E||x - T*(x)||^2`` (no 1/2 factor) from samples ``x ~ P``, ``y ~ Q``.

        ``"dual"`` (Section 3, eq. 5, without the regulariser):
        ``E||x||^2 + E||y||^2 - 2 (E psi_theta(x) + E psi_theta^*(y))`` with the conjugate from
        :meth:`conjugate_potential`. ``"primal"``: ``E||x - T(x)||^2`` (needs only ``x``; an upper
        bound when ``T`` pushes ``P`` exactly to ``Q``).
        """
        xt, _ = _to_tensor(x)
        if estimator == "primal":
            tx = torch.as_tensor(self.forward(xt, batch_size))
            return float((tx.to(torch.float64) - xt.to(torch.float64)).flatten(1).square().sum(1).mean())
        if estimator != "dual":
            raise ValueError(f"unknown estimator {estimator!r}; use 'dual' or 'primal'")
        yt, _ = _to_tensor(y)
        px = torch.as_tensor(self.potential(xt, batch_size)).to(torch.float64)
        cy = torch.as_tensor(self.conjugate_potential(yt, batch_size)).to(torch.float64)
        mx = xt.to(torch.float64).flatten(1).square().sum(1).mean()
        my = yt.to(torch.float64).flatten(1).square().sum(1).mean()
        return float(mx + my - 2 * (px.mean() + cy.mean()))

    def log_density(
        self, y, base_log_prob: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 1024
    ):
        """Log density of the generated distribution ``T#P`` at ``y`` by change of variables (C.5).

        With ``T^{-1} = grad psi_omega`` injective:
        ``log q(y) = log p(grad psi_omega(y)) + log det Hess psi_omega(y)``. ``base_log_prob`` is
        ``log p`` of the source (rows -> ``(N,)``). Needs the conjugate network and vector inputs;
        the Hessian costs ``D`` backward passes per batch. With a frame, the Hessian is taken in the
        training coordinates and the frame's constant Jacobian
        (:meth:`~w2gn.affine_frame.AffineFrame.log_det_inverse_jacobian`) is added.
        """
        if self.inverse_potential is None:
            raise W2GNUserError("log_density needs a map with a conjugate network (e.g. method 'w2gn')")
        if len(self.event_shape) != 1:
            raise W2GNUserError("log_density is defined for vector samples (N, D) only")
        pot = self.inverse_potential
        frame = self.frame
        shift = 0.0 if frame is None else frame.log_det_inverse_jacobian()

        def f(t_user: torch.Tensor) -> torch.Tensor:
            t = self._to_target(t_user)
            outs = []
            for s in range(0, t.shape[0], batch_size):
                b = t[s : s + batch_size].to(self.device, self.dtype).requires_grad_(True)
                with torch.enable_grad():
                    g = pot.gradient(b, create_graph=True)
                    rows = [torch.autograd.grad(g[:, i].sum(), b, retain_graph=True)[0] for i in range(g.shape[1])]
                hess = torch.stack(rows, dim=1).detach().to(torch.float64)
                hess = 0.5 * (hess + hess.mT)
                sign, logdet = torch.linalg.slogdet(hess)
                logdet = torch.where(sign > 0, logdet, torch.full_like(logdet, -math.inf))
                lp = base_log_prob(self._from_source(g.detach())).to(torch.float64)
                outs.append((lp + logdet + shift).to(t.device))
            return torch.cat(outs) if outs else t.new_empty((0,))

        return self._apply(f, y, "log_density input")

    # ----------------------------------------------------------------------------- save / load
    def state(self) -> dict[str, Any]:
        """Plain-data + tensors dictionary that :meth:`from_state` rebuilds the map from."""

        def pack(p, spec):
            if p is None:
                return None
            return {"spec": spec(p), "state_dict": {k: v.detach().cpu() for k, v in p.state_dict().items()}}

        state = {
            "format": FORMAT,
            # version 1 readers can still load maps without map networks
            "version": 1,
            "method": self.method,
            "forward": pack(self.forward_potential, potential_spec),
            "inverse": pack(self.inverse_potential, potential_spec),
            "info": self.info,
            "conjugate_options": dict(self.conjugate_options),
        }
        if self.forward_network is not None or self.inverse_network is not None:
            state["version"] = 2
            state["forward_network"] = pack(self.forward_network, map_network_spec)
            state["inverse_network"] = pack(self.inverse_network, map_network_spec)
        if self.frame is not None:
            state["version"] = 3
            state["frame"] = self.frame.state()
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], source: str = "state") -> TransportMap:
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise W2GNUserError(f"{source}: not a w2gn map file (no '{FORMAT}' header)")
        if int(state.get("version", -1)) > FORMAT_VERSION:
            raise W2GNUserError(f"{source}: written by a newer w2gn (format {state['version']}); upgrade w2gn")

        def unpack(d, build=build_potential):
            if d is None:
                return None
            # cast before loading: loading float64 weights into a float32 network would round them
            dtype = next(iter(d["state_dict"].values())).dtype
            p = build(d["spec"]).to(dtype=dtype)
            p.load_state_dict(d["state_dict"])
            return p

        try:
            fwd = unpack(state["forward"])
            inv = unpack(state.get("inverse"))
            fnet = unpack(state.get("forward_network"), build_map_network)
            inet = unpack(state.get("inverse_network"), build_map_network)
            if fwd is None and fnet is None:
                raise ValueError("no forward potential and no forward map network")
            frame = AffineFrame.from_state(state["frame"]) if state.get("frame") is not None else None
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise W2GNUserError(f"{source}: the map file is damaged or inconsistent ({exc})") from exc
        for p in (fwd, inv, fnet, inet):
            if p is not None and not all(bool(torch.isfinite(v).all()) for v in p.state_dict().values()):
                raise W2GNUserError(f"{source}: the map holds non-finite weights")
        fitted = cls(fwd, inv, method=state.get("method", "w2gn"), info=state.get("info", {}),
                     forward_network=fnet, inverse_network=inet, frame=frame)
        fitted.conjugate_options.update(state.get("conjugate_options") or {})
        return fitted

    def save(self, path: str | os.PathLike) -> Path:
        """Write weights and configuration to ``path`` (atomically; ``torch.save`` format)."""
        for p in self._modules():
            if not all(bool(torch.isfinite(v).all()) for v in p.state_dict().values()):
                raise W2GNUserError("refusing to save a map with non-finite weights")
        atomic_torch_save(self.state(), path)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> TransportMap:
        """Read a map written by :meth:`save`; raises :class:`W2GNUserError` on damaged or foreign files."""
        p = Path(path)
        if not p.is_file():
            raise W2GNUserError(f"{p}: no such map file")
        try:
            state = torch.load(p, map_location=map_location, weights_only=True)
        except Exception as exc:
            raise W2GNUserError(f"{p}: cannot be read as a w2gn map (truncated or foreign file: {type(exc).__name__})") from exc
        return cls.from_state(state, str(p))

    def __repr__(self) -> str:
        inv_mod = self.inverse_network if self.inverse_network is not None else self.inverse_potential
        inv = type(inv_mod).__name__ if inv_mod is not None else (
            "numerical conjugate" if self.forward_potential is not None else "none")
        fwd = type(self._forward_module).__name__
        frame = "" if self.frame is None else f", frame={self.frame.mode!r}"
        return f"TransportMap(method={self.method!r}, forward={fwd}, inverse={inv}, event_shape={self.event_shape}{frame})"


def _keep_improved_rows(potential: ConvexPotential, y: torch.Tensor, x0: torch.Tensor, x: torch.Tensor,
                        factor: float = 0.5, max_move: float = 10.0) -> torch.Tensor:
    """Per row, the refined ``x`` where it at least halves the residual ``r0 = ||grad psi(x0) - y||`` of
    the amortised ``x0`` and moved at most ``max_move * r0`` from it, else ``x0``.

    For ``y`` outside the range of ``grad psi`` (or in a gap of it) the conjugate problem has no maximiser:
    where the ICNN is nearly affine the solver walks off towards infinity, and the residual can still
    shrink (a gradient approaching ``y`` only far away). If ``grad psi`` changes by at least ``m |dx|`` over
    a step ``dx`` (its Jacobian at least ``m``), the true inverse lies within ``r0 / m`` of ``x0``; so a move
    of many times the residual means ``grad psi`` is nearly flat along it, and the point is no inverse.
    Measured (first 4096 evaluation rows): healthy fits move at most 3.5 ``r0`` (hard D = 8 pair) and 6.9
    ``r0`` (fitted D = 16); a D = 16 fit with near-flat regions (input layers at 100x) moved 130-144 ``r0``
    and took the inverse from 2.7 % to 24,000 % L2-UVP. A refinement must never make the inverse worse than
    the network it starts from.
    """
    with torch.no_grad():
        r0 = (potential.map(x0) - y).flatten(1).norm(dim=1)
        r = (potential.map(x) - y).flatten(1).norm(dim=1)
        move = (x - x0).flatten(1).norm(dim=1)
        ok = (torch.isfinite(r) & torch.isfinite(x.flatten(1)).all(dim=1) & (r <= factor * r0)
              & (move <= max_move * r0))
    return torch.where(ok.view(-1, *([1] * (x.dim() - 1))), x, x0)


__all__ = ["TransportMap", "FORMAT", "FORMAT_VERSION"]
