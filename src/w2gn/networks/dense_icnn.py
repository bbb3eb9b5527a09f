"""Dense input-convex neural network with convex-quadratic skip layers (paper, Appendix B.2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .base import ConvexPotential
from .convex_quadratic import ConvexQuadratic

_ACTIVATIONS = {
    "celu": nn.functional.celu,
    "softplus": nn.functional.softplus,
    "relu": nn.functional.relu,
}


class DenseICNN(ConvexPotential):
    """Dense ICNN ``[r; h0; h1, ..., hK]`` of the paper (Figure 6).

    ``z_0 = CQ_0(x)``; ``z_k = act(W_k z_{k-1} + CQ_k(x))`` for ``k = 1..K`` with ``W_k >= 0``;
    ``psi(x) = w_out^T z_K + beta/2 ||x||^2`` with ``w_out >= 0``. Every ``CQ_k`` is a
    :class:`ConvexQuadratic` layer reading the raw input, and ``act`` is convex and non-decreasing
    (CELU by default, as in the paper), so ``psi`` is convex; ``beta > 0`` makes it strongly convex
    and its gradient a bijection (Appendix B.1).

    Parameters
    ----------
    dim:
        Input dimension ``D``.
    hidden:
        Widths ``[h0, h1, ..., hK]`` (``h0`` is the first convex-quadratic layer's width).
    rank:
        Rank ``r`` of every convex-quadratic form.
    activation:
        ``"celu"`` (default), ``"softplus"`` or ``"relu"`` (discontinuous gradient: see Figure 11).
    strong_convexity:
        ``beta`` of the ``beta/2 ||x||^2`` term. The paper uses ``1e-6``.
    dropout:
        Dropout after each layer in training mode (the reference code used 0.03; default 0).
    seed:
        If given, the initialisation uses a private generator with this seed.
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64, 32),
        rank: int = 1,
        activation: str = "celu",
        strong_convexity: float = 1e-6,
        dropout: float = 0.0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        hidden = [int(h) for h in hidden]
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        if not hidden or min(hidden) <= 0:
            raise ValueError(f"hidden must be a non-empty list of positive widths, got {hidden}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}")
        if strong_convexity < 0:
            raise ValueError(f"strong_convexity must be >= 0, got {strong_convexity}")
        self.dim = int(dim)
        self.event_shape = (self.dim,)
        self.hidden = hidden
        self.rank = int(rank)
        self.activation = activation
        self.strong_convexity = float(strong_convexity)
        self.dropout = float(dropout)
        self._act = _ACTIVATIONS[activation]
        self.quadratic_layers = nn.ModuleList(ConvexQuadratic(dim, h, rank=rank) for h in hidden)
        self.convex_layers = nn.ModuleList(
            nn.Linear(h_in, h_out, bias=False) for h_in, h_out in zip(hidden[:-1], hidden[1:])
        )
        self.final_layer = nn.Linear(hidden[-1], 1, bias=False)
        self._drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.reset_parameters(seed)

    def reset_parameters(self, seed: int | None = None) -> None:
        gen = None
        if seed is not None:
            gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for layer in self.quadratic_layers:
                layer.reset_parameters(gen)
            # non-negative weights with mean 1/fan_in: each unit starts as an average of its inputs
            for layer in [*self.convex_layers, self.final_layer]:
                layer.weight.uniform_(0.0, 2.0 / layer.in_features, generator=gen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``psi(x)`` for ``x`` of shape ``(N, D)``; returns shape ``(N,)``."""
        z = self._drop(self.quadratic_layers[0](x))
        for quad, lin in zip(self.quadratic_layers[1:], self.convex_layers):
            z = self._drop(self._act(lin(z) + quad(x)))
        out = self.final_layer(z).squeeze(-1)
        if self.strong_convexity:
            out = out + 0.5 * self.strong_convexity * x.square().sum(dim=-1)
        return out

    def gradient_analytic(self, x: torch.Tensor) -> torch.Tensor:
        """``grad_x psi(x)`` by an explicit backward pass written in tensor operations.

        Equal to :meth:`gradient` (autograd) but built from plain matmuls, so it is differentiable
        w.r.t. the parameters with a single backward (no double backward) and exportable to
        TorchScript/ONNX. With ``a_k`` the pre-activations and ``delta_K = w_out``:
        ``g_k = delta_k * act'(a_k)``, ``delta_{k-1} = g_k W_k``,
        ``grad = sum_k J_{CQ_k}(x)^T g_k + J_{CQ_0}(x)^T delta_0 + beta x`` with
        ``J_CQ^T g = 2 F (P * g) + W^T g`` for ``P = F^T x`` (B.2). Dropout must be inactive.
        """
        return self._analytic(x, with_value=False)

    def value_and_gradient_analytic(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(psi(x), grad_x psi(x))`` from one forward sweep: shapes ``(N,)`` and ``(N, D)``.

        The training step needs both at the same points (the correlation term and the cycle term of
        eq. 12 at ``grad psi_omega(y)``); sharing the forward sweep saves one forward pass of psi.
        """
        return self._analytic(x, with_value=True)

    def _analytic(self, x: torch.Tensor, with_value: bool):
        if self.training and self.dropout > 0:
            raise RuntimeError("gradient_analytic does not model dropout; call eval() or use dropout=0")
        n = x.shape[0]
        quads = []  # per layer: projections P (N, rank, out)
        pre = []  # pre-activations a_k, k >= 1
        q0 = self.quadratic_layers[0]
        p0 = (x @ q0.quadratic_decomposed).view(n, q0.rank, q0.out_features)
        quads.append(p0)
        z = p0.square().sum(1) + nn.functional.linear(x, q0.weight, q0.bias)
        for quad, lin in zip(self.quadratic_layers[1:], self.convex_layers):
            pk = (x @ quad.quadratic_decomposed).view(n, quad.rank, quad.out_features)
            quads.append(pk)
            a = lin(z) + pk.square().sum(1) + nn.functional.linear(x, quad.weight, quad.bias)
            pre.append(a)
            z = self._act(a)
        delta = self.final_layer.weight.expand(n, -1)
        grad = self.strong_convexity * x if self.strong_convexity else torch.zeros_like(x)
        for k in range(len(self.convex_layers), -1, -1):
            if k >= 1:
                g = delta * _act_derivative(self.activation, pre[k - 1])
            else:
                g = delta
            layer = self.quadratic_layers[k]
            pg = (quads[k] * g.unsqueeze(1)).reshape(n, layer.rank * layer.out_features)
            grad = grad + 2.0 * pg @ layer.quadratic_decomposed.T + g @ layer.weight
            if k >= 1:
                delta = g @ self.convex_layers[k - 1].weight
        if not with_value:
            return grad
        value = self.final_layer(z).squeeze(-1)
        if self.strong_convexity:
            value = value + 0.5 * self.strong_convexity * x.square().sum(dim=-1)
        return value, grad

    def constrained_parameters(self) -> list[nn.Parameter]:
        return [layer.weight for layer in self.convex_layers] + [self.final_layer.weight]

    def input_parameters(self) -> list[nn.Parameter]:
        """The convex-quadratic layers' ``F``, ``W`` and biases: the only weights that see ``x``."""
        return [p for layer in self.quadratic_layers for p in layer.parameters()]

    def linear_input_parameters(self) -> list[nn.Parameter]:
        """The convex-quadratic layers' linear weights ``W`` (of ``x^T F F^T x + W x + b``)."""
        return [layer.weight for layer in self.quadratic_layers]

    def config(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "hidden": list(self.hidden),
            "rank": self.rank,
            "activation": self.activation,
            "strong_convexity": self.strong_convexity,
            "dropout": self.dropout,
        }


def _act_derivative(name: str, a: torch.Tensor) -> torch.Tensor:
    """Derivative of the activation at pre-activation ``a`` (CELU with alpha=1, softplus, ReLU)."""
    if name == "celu":
        return torch.where(a > 0, torch.ones_like(a), torch.exp(torch.clamp(a, max=0.0)))
    if name == "softplus":
        # torch's softplus is linear above its threshold (20): match it so both gradients agree
        return torch.where(a > 20.0, torch.ones_like(a), torch.sigmoid(a))
    return (a > 0).to(a.dtype)
