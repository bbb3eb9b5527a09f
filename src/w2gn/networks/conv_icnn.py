"""Convolutional input-convex neural network for images (paper, Appendix B.3, Figure 7)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import ConvexPotential


class ConvICNN(ConvexPotential):
    """Conv ICNN for ``C x H x W`` images of any size.

    Linear block: two separate stacks of ``linear_depth`` 3x3 convolutions without activation,
    ``A(x)`` and ``B(x)``; their combination ``A(x) + B(x)^2`` is convex (a square of an affine map
    plus an affine map). Convexity-preserving block: CELU, then ``strided_layers`` stride-2 3x3
    convolutions with non-negative weights and CELU, then a global average pool (linear with positive
    weights, so it preserves convexity and removes any dependence on the image size), then dense
    layers with non-negative weights down to one output. ``beta/2 ||x||^2`` is added for strong
    convexity.

    ``area_scaling`` (default on) multiplies the head's output by the number of pooled positions
    ``h * w``. The potential is then additive over the image area like ``beta/2 ||x||^2``, and the
    gradient at a pixel depends only on its neighbourhood and the image's feature statistics, not on
    the image size: a map trained on 128x128 crops applies unchanged to whole 256x256 images. With
    plain averaging (``area_scaling=False``) every pixel's gradient would shrink as ``1 / (h w)`` on
    larger images. A positive constant factor keeps the potential convex.

    The paper's network (Figure 7; the reference code's ``ConvICNN128``) has 128 features, four
    convolutions per linear stack and five strided layers, then flattens a 4x4 map: use
    ``features=128, linear_depth=4`` for it. Pooling instead of flattening is what frees the image size.

    Shapes: input ``(N, C, H, W)`` -> output ``(N,)``.
    """

    def __init__(
        self,
        channels: int = 3,
        features: int = 128,
        linear_depth: int = 2,
        strided_layers: int = 5,
        dense: tuple[int, ...] | list[int] = (128, 64, 32),
        strong_convexity: float = 1e-6,
        seed: int | None = None,
        area_scaling: bool = True,
    ) -> None:
        super().__init__()
        if channels <= 0 or features <= 0 or linear_depth <= 0 or strided_layers < 0:
            raise ValueError("channels, features and linear_depth must be positive, strided_layers >= 0")
        self.channels = int(channels)
        self.features = int(features)
        self.linear_depth = int(linear_depth)
        self.strided_layers = int(strided_layers)
        self.dense = [int(d) for d in dense]
        self.strong_convexity = float(strong_convexity)
        self.area_scaling = bool(area_scaling)
        self.event_shape = (self.channels, -1, -1)  # spatial size is free

        def stack(last_bias: bool) -> nn.Sequential:
            layers = []
            for i in range(self.linear_depth):
                c_in = self.channels if i == 0 else self.features
                bias = last_bias and i == self.linear_depth - 1
                layers.append(nn.Conv2d(c_in, self.features, 3, padding=1, bias=bias))
            return nn.Sequential(*layers)

        self.first_linear = stack(last_bias=True)
        self.first_squared = stack(last_bias=False)
        self.convex_convs = nn.ModuleList(
            nn.Conv2d(self.features, self.features, 3, stride=2, padding=1, bias=True)
            for _ in range(self.strided_layers)
        )
        widths = [self.features, *self.dense, 1]
        self.convex_dense = nn.ModuleList(
            nn.Linear(a, b, bias=(b != 1)) for a, b in zip(widths[:-1], widths[1:])
        )
        self.reset_parameters(seed)

    def reset_parameters(self, seed: int | None = None) -> None:
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        with torch.no_grad():
            for conv in [*self.first_linear, *self.first_squared]:
                fan_in = conv.in_channels * 9
                conv.weight.normal_(0.0, 1.0 / fan_in**0.5, generator=gen)
                if conv.bias is not None:
                    conv.bias.zero_()
            for layer in [*self.convex_convs, *self.convex_dense]:
                fan_in = layer.weight[0].numel()
                layer.weight.uniform_(0.0, 2.0 / fan_in, generator=gen)
                if layer.bias is not None:
                    layer.bias.zero_()

    def reset_identity(self, scale: float = 0.05, seed: int | None = None) -> None:
        """Initialise near ``psi(x) = 1/2 ||x||^2``, i.e. ``grad psi ~ identity``, then add the random
        initialisation times ``scale`` so that no unit starts dead.

        The exact identity is representable: the squared stack copies the input channels (centre-tap
        kernels) so ``z_c = x_c^2 >= 0`` (where CELU is the identity), every strided convolution sums
        2x2 blocks (taps ``[1:3, 1:3]`` with stride 2 and padding 1 cover each pixel once), the
        area-scaled pool turns the mean back into the sum, and the dense head passes the first unit
        with weight 1 and halves it at the end. Generic random starts fit the identity slowly (the
        identity pretraining of C.1 then leaves a blurring map); this start makes it converge at once.
        Needs ``features >= channels`` and ``area_scaling``.
        """
        if self.features < self.channels or not self.area_scaling:
            raise ValueError("reset_identity needs features >= channels and area_scaling=True")
        self.reset_parameters(seed)
        c = self.channels
        with torch.no_grad():
            for p in self.parameters():
                p.mul_(scale)
            for conv in self.first_squared:
                for k in range(c):
                    conv.weight[k, k, 1, 1] += 1.0
            for conv in self.convex_convs:
                for k in range(self.features):
                    conv.weight[k, k, 1:3, 1:3] += 1.0
            *hidden, last = self.convex_dense
            # unit 0 of every hidden dense layer carries sum_c sum_pixels x_c^2; the output halves it
            for j, layer in enumerate(hidden):
                if j == 0:
                    layer.weight[0, :c] += 1.0
                else:
                    layer.weight[0, 0] += 1.0
            if hidden:
                last.weight[0, 0] += 0.5
            else:
                last.weight[0, :c] += 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"ConvICNN expects (N, {self.channels}, H, W) input, got {tuple(x.shape)}")
        z = self.first_linear(x) + self.first_squared(x).square()
        z = nn.functional.celu(z)
        for conv in self.convex_convs:
            z = nn.functional.celu(conv(z))
        positions = z.shape[2] * z.shape[3]
        z = z.mean(dim=(2, 3))
        for i, layer in enumerate(self.convex_dense):
            z = layer(z)
            if i < len(self.convex_dense) - 1:
                z = nn.functional.celu(z)
        out = z.squeeze(-1)
        if self.area_scaling:
            out = out * positions
        if self.strong_convexity:
            out = out + 0.5 * self.strong_convexity * x.square().flatten(1).sum(dim=1)
        return out

    def constrained_parameters(self) -> list[nn.Parameter]:
        return [layer.weight for layer in [*self.convex_convs, *self.convex_dense]]

    def config(self) -> dict[str, Any]:
        return {
            "channels": self.channels,
            "features": self.features,
            "linear_depth": self.linear_depth,
            "strided_layers": self.strided_layers,
            "dense": list(self.dense),
            "strong_convexity": self.strong_convexity,
            "area_scaling": self.area_scaling,
        }
