"""Options and construction shared by every solver that trains Dense ICNN potentials (W2GN, LSOT, MM-1, MM-2).

:class:`PotentialConfig` is the one home of the network and pretraining options: W2GNConfig and the
baselines' configs inherit it, so one dictionary of network options configures every method alike
(the comparison harness relies on this) and the defaults and checks cannot drift apart.
"""

from __future__ import annotations

import dataclasses

import torch

from ..distributions import Sampler
from ..errors import W2GNUserError
from ..networks import DenseICNN
from .base import SolverConfig
from .pretrain import pretrain_identity


def default_hidden(dim: int) -> list[int]:
    """Default Dense ICNN widths ``[h0, h1, h2]`` for dimension ``D``: at least 64 units, about ``2D``."""
    h = max(64, 2 * dim)
    return [h, h, max(32, h // 2)]


@dataclasses.dataclass
class PotentialConfig(SolverConfig):
    """Network and pretraining options of a solver built on Dense ICNN potentials.

    ``hidden`` (widths ``[h0; h1, ...]``, ``None`` = :func:`~w2gn.solvers.default_hidden`),
    ``rank``, ``activation``, ``strong_convexity``: the :class:`~w2gn.networks.DenseICNN`;
    ``betas``: Adam's; ``pretrain_iterations``/``pretrain_lr``/``pretrain_tol``: identity
    pretraining (C.1) of every potential before training (0 = none), as W2GN does, so that all
    methods start from the same map. ``input_lr_factor``: the learning rate of the layers that read x
    (Dense ICNN: the convex-quadratic ones) over ``lr``; 1 = the paper's single rate. Adam moves every
    weight by about ``lr`` per step, so input weights (~1/sqrt(D)) change far slower, relatively, than
    the non-negative hidden ones (~1/width), and maps that jump between regions are learned slowly
    (issue 24; ``w2gn toy`` uses 100, ``w2gn fit`` 10). ``linear_input_lr_factor``: the same for the input
    layers' linear weights alone (Dense ICNN: ``W`` of ``x^T F F^T x + W x + b``), ``None`` = ``input_lr_factor``;
    split off because, of the three parts, ``W`` alone carries both the gain of fast input layers on the hard
    benchmark pairs and their harm on the near-linear ones (``benchmarks/results/hard_pairs.md``, thirteenth
    session); no preset sets it.
    """

    hidden: list[int] | None = None
    rank: int = 1
    activation: str = "celu"
    strong_convexity: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.999)
    pretrain_iterations: int = 1000
    pretrain_lr: float = 1e-3
    pretrain_tol: float = 1e-4
    input_lr_factor: float = 1.0
    linear_input_lr_factor: float | None = None

    def validate(self) -> None:
        super().validate()
        if self.pretrain_iterations < 0:
            raise W2GNUserError(f"pretrain_iterations must be >= 0, got {self.pretrain_iterations}")
        if not self.input_lr_factor > 0:
            raise W2GNUserError(f"input_lr_factor must be positive, got {self.input_lr_factor}")
        if self.linear_input_lr_factor is not None and not self.linear_input_lr_factor > 0:
            raise W2GNUserError(f"linear_input_lr_factor must be positive, got {self.linear_input_lr_factor}")
        if self.rank <= 0:
            raise W2GNUserError(f"rank must be positive, got {self.rank}")


def build_dense_potential(config: PotentialConfig, p: Sampler, seed: int) -> DenseICNN:
    """A Dense ICNN for vector samples of ``p``, on ``p``'s device and dtype."""
    if len(tuple(p.event_shape)) != 1:
        raise W2GNUserError(f"this method supports vector samples (N, D) only, got samples of shape {tuple(p.event_shape)}")
    d = int(p.event_shape[0])
    net = DenseICNN(d, config.hidden or default_hidden(d), rank=config.rank, activation=config.activation,
                    strong_convexity=config.strong_convexity, seed=seed)
    return net.to(device=p.device, dtype=p.dtype)


def pretrain(config: PotentialConfig, net: DenseICNN, samplers: list[Sampler], generator: torch.Generator,
             skip: bool = False) -> float:
    """Identity pretraining with the configured budget (no-op when ``pretrain_iterations`` is 0 or
    ``skip``: a solver's :attr:`~w2gn.solvers.Solver.restoring`, whose checkpoint overwrites the weights)."""
    if skip or not config.pretrain_iterations:
        return float("nan")
    return pretrain_identity(net, samplers, config.pretrain_iterations, config.batch_size, config.pretrain_lr,
                             config.pretrain_tol, generator)


def pretrained_potential(solver, p: Sampler, q: Sampler, generator: torch.Generator,
                         potential: DenseICNN | None = None) -> DenseICNN:
    """psi_theta of a baseline: ``potential`` (moved to ``p``'s device/dtype) or a new Dense ICNN, pretrained
    to the identity on P and Q (C.1) unless the solver is restoring a checkpoint; the pretraining loss
    goes to ``solver.pretrain_loss``."""
    c = solver.config
    theta = potential.to(device=p.device, dtype=p.dtype) if potential is not None else build_dense_potential(c, p, c.seed)
    solver.pretrain_loss = pretrain(c, theta, [p, q], generator, skip=solver.restoring)
    return theta


def adam(net: torch.nn.Module, config: PotentialConfig, lr: float | None = None, fused: bool = True) -> torch.optim.Adam:
    """Adam over ``net``'s parameters at ``lr`` (default ``config.lr``); with ``config.input_lr_factor != 1``
    the layers that read the raw input (:meth:`~w2gn.networks.ConvexPotential.input_parameters`) form a
    second group at ``lr * input_lr_factor`` (one group otherwise, so older optimiser states still load); with a
    ``linear_input_lr_factor`` that differs from it, their linear weights
    (:meth:`~w2gn.networks.ConvexPotential.linear_input_parameters`) form a third group at ``lr * linear_input_lr_factor``.

    ``fused``: PyTorch's fused Adam kernel where the parameters' device has one (CPU and CUDA). The update
    is Adam's, but one kernel call per group instead of a dozen small tensor operations per parameter: on the
    CPU 0.2 against 0.8 ms a step for a D = 16 potential (whose whole W2GN step takes ~25 ms), paid once per
    network and per process, so it counts most when 2 processes share a fit (issue 22). Its rounding differs
    from the per-tensor loop in the last bits, so a script that must rebuild older weights bit for bit passes
    ``fused=False``."""
    lr = config.lr if lr is None else lr
    betas = tuple(config.betas)
    params = list(net.parameters())
    kernel = {"fused": True} if fused and _fused_ok(params) else {}
    inputs = list(net.input_parameters()) if hasattr(net, "input_parameters") else []
    linear = list(net.linear_input_parameters()) if hasattr(net, "linear_input_parameters") else []
    k_in = float(config.input_lr_factor)
    k_lin = k_in if config.linear_input_lr_factor is None else float(config.linear_input_lr_factor)
    if not inputs or (k_in == 1.0 and k_lin == 1.0):
        return torch.optim.Adam(params, lr=lr, betas=betas, **kernel)
    ids = {id(p) for p in inputs}
    rest = [p for p in params if id(p) not in ids]
    if k_lin == k_in or not linear:
        return torch.optim.Adam([{"params": rest, "lr": lr}, {"params": inputs, "lr": lr * k_in}],
                                lr=lr, betas=betas, **kernel)
    lin_ids = {id(p) for p in linear}
    other = [p for p in inputs if id(p) not in lin_ids]
    return torch.optim.Adam([{"params": rest, "lr": lr}, {"params": other, "lr": lr * k_in},
                             {"params": linear, "lr": lr * k_lin}], lr=lr, betas=betas, **kernel)


def _fused_ok(params: list[torch.Tensor]) -> bool:
    """Whether torch's fused Adam takes ``params``: floating point, on one CPU or CUDA device."""
    devices = {p.device for p in params}
    return (len(devices) == 1 and next(iter(devices)).type in ("cpu", "cuda")
            and all(p.is_floating_point() for p in params))
