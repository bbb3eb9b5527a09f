"""The W2GN solver: Algorithm 1 of the paper with the training details of Appendix C.1.

Objective (eq. 12), minimised jointly over both potentials with separate Adam optimisers:

    L = E_P psi_theta(x) + E_Q [<grad psi_omega(y), y> - psi_theta(grad psi_omega(y))]
        + lambda * R_Y(theta, omega) [+ lambda * R_X(theta, omega)] [+ l1 * (|theta|_1 + |omega|_1)]

with R_Y = E_Q ||grad psi_theta(grad psi_omega(y)) - y||^2 (eq. 11) and R_X its mirror (eq. 51).
The stop-gradient heuristic of C.1 (default on) detaches ``grad psi_omega(y)`` inside the
correlation term, so omega is trained by the cycle terms only; the ``<., y>`` term then carries no
gradient and is kept only for monitoring.

Cycle normalisation (which ``lambda`` refers to):

* ``"coordinate"`` (default, as the reference code): ``R`` is the mean over the batch *and the
  coordinates* of the squared error, and the loss adds ``lambda * R``;
* ``"sample"`` (Algorithm 1 as printed): ``R`` is the batch mean of the squared norm, and the loss
  adds ``lambda / 2 * R``.

So ``lambda_coordinate = lambda_sample * D / 2`` gives the same objective.

The objective itself is the pure function :func:`~w2gn.solvers.objective.w2gn_objective`; this module
turns the configuration into its terms and owns the optimisation plumbing around it.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch

from ..conjugate import solve_conjugate, solve_conjugate_newton
from ..distributions import Sampler
from ..errors import W2GNUserError
from ..fitted_map import TransportMap
from ..inverse_choice import choose_inverse
from ..networks import ConvexPotential, ConvICNN, DenseICNN
from .base import (
    Solver,
)
from .icnn_config import PotentialConfig, adam, default_hidden
from .objective import W2GNTerms, w2gn_objective
from .pretrain import linear_init_maps, pretrain_identity

#: samples per side on which a finished fit compares the two potentials' dual values (:meth:`W2GNSolver.result`)
INVERSE_CHOICE_SAMPLES = 4096


def default_lr(dim: int) -> float:
    """``w2gn fit``'s Adam learning rate for dimension ``D`` (the Python API keeps the paper's 1e-3).

    Measured (benchmarks/results/accuracy.md, speed_and_scale.md, hard_pairs.md): 3e-3 beat 1e-3 on the
    fitted benchmark pairs at D <= 16; at D = 256-1024 1e-3 stalled near the identity's error while 3e-4
    (D = 256, 512) and 1e-4 (D = 1024) learned (the paper's configuration). With ``w2gn fit``'s input layers at
    10x (:func:`default_input_lr_factor`) 1e-3 collapsed the D = 128 Gaussian pair within 55 steps, where
    3e-4 reached 0.02 % L2-UVP in 300 CPU-s (nineteenth session). At D = 512 it collapsed at 3e-4 and 1e-4
    alike until the cycle weight lost C.4's cap (``lambda_cap``); uncapped, 3e-4 reached 3.6 % in 300 CPU-s.
    """
    if dim <= 16:
        return 3e-3
    if dim <= 64:
        return 1e-3
    return 3e-4


def default_input_lr_factor(dim: int) -> float:
    """``w2gn fit``'s learning-rate multiplier of the layers that read x, for dimension ``D`` (the API keeps 1).

    Adam's first steps move every weight by about the learning rate, with signs that agree across the D
    inputs, so an input layer's output moves by about ``lr * factor * ||x||_1`` a step, summed over the
    layer's ~2D units: the factor that helps at small D (10x: issue 24) blows the fit up at large D. Measured on
    the not-centred Gaussian pair at the default lr (``frame_ablation.py --family gaussian``, nineteenth session):
    D = 128 at 10x 0.02 % in 300 CPU-s; D = 256 at 10x 53,000 % after 150 steps, at 4x 0.52 %, at 3x 0.86 %;
    D = 512 at 3x a constant map.
    """
    if dim <= 128:
        return 10.0
    if dim <= 256:
        return 4.0
    return 1.0


#: the smallest dimension at which ``w2gn fit`` turns the expectile regulariser on (:func:`default_expectile_weight`)
EXPECTILE_FROM_DIM = 8
#: the largest dimension at which it is on: above, it slowed (D = 256: 27.7 % against 0.86 % after 150 steps) or
#: blew up (D = 512, first step) the Gaussian pair, and it was not measured to help
EXPECTILE_TO_DIM = 128
#: the expectile regulariser's weight ``w2gn fit`` uses from :data:`EXPECTILE_FROM_DIM` to :data:`EXPECTILE_TO_DIM`
EXPECTILE_WEIGHT = 10.0


def default_expectile_weight(dim: int) -> float:
    """``w2gn fit``'s weight of the expectile regulariser for dimension ``D`` (the Python API keeps the paper's 0).

    Measured on the benchmark pairs at 900 CPU-s (benchmarks/results/hard_pairs.md, eighteenth and nineteenth
    sessions; forward / inverse L2-UVP %, weight 10 against 0): it helps from D = 8 up (hard D = 8, 16, 32 and
    the near-linear fitted D = 64, where it cut 5.89 / 8.22 to 1.34 / 1.22) and loses at D <= 4 (hard D = 4, 120
    CPU-s: 0.303 against 0.147), so below :data:`EXPECTILE_FROM_DIM` it stays off; it tied on the D = 128
    Gaussian pair (0.0195 against 0.0213 %, 300 CPU-s) and above :data:`EXPECTILE_TO_DIM` it is off.
    """
    return EXPECTILE_WEIGHT if EXPECTILE_FROM_DIM <= dim <= EXPECTILE_TO_DIM else 0.0


@dataclasses.dataclass
class W2GNConfig(PotentialConfig):
    """Hyper-parameters of :class:`W2GNSolver` (defaults: Appendix C.1/C.4 where they apply).

    Network: ``hidden`` (Dense ICNN widths ``[h0; h1, ...]``, ``None`` = :func:`default_hidden`),
    ``rank``, ``activation``, ``strong_convexity``, ``dropout``; image inputs get a
    :class:`~w2gn.networks.ConvICNN` instead.

    Objective: ``lambda_cycle`` (``None`` = ``min(lambda_per_dim * D, lambda_cap)``: C.4's ``min(D, 50)`` at the
    defaults ``lambda_per_dim = 1``, ``lambda_cap = 50``; ``w2gn fit`` uses 0.5 and no cap, see
    :mod:`~w2gn.solvers.presets`), ``cycle_normalization``
    (``"coordinate"``/``"sample"``, see module doc), ``cycle_y`` (R_Y, eq. 11), ``cycle_x`` (R_X,
    eq. 51, used by the paper in high dimensions), ``correlation_on`` (``"theta"``: the correlation
    term of eq. 12 on psi_theta, the paper's choice; ``"omega"``: the mirrored objective with the
    roles of P and Q swapped; ``"both"``: the sum of the two, so that each potential learns its own
    map from its correlations and R_Y and R_X both hold), ``stop_gradient`` (heuristic of C.1), ``l1_penalty``.

    Optimisation: ``betas`` of both Adams; ``pretrain_iterations``/``pretrain_lr``/``pretrain_tol``
    of the identity pretraining (0 iterations = none).

    Accuracy options (all off by default, i.e. the paper's algorithm; measured in
    ``benchmarks/results/accuracy.md``):

    * ``refine_steps``: conjugate refinement in training (Amos, ICLR 2023): the amortised
      ``x_hat = grad psi_omega(y)`` is improved by that many ``refine_method`` steps
      (``"lbfgs"`` or ``"newton"``) on ``max_x <x, y> - psi_theta(x)``; the refined point (no
      gradient) enters the correlation term, and ``psi_omega`` also regresses onto it
      (``lambda * mean ||grad psi_omega(y) - x_ref||^2``). ``refine_inverse_steps``: the same
      refinement of the inverse map at inference (stored in the fitted map).
    * ``expectile_weight``/``expectile``: expectile regulariser of the conjugate's values (Buzun et
      al. 2024): ``psi_omega(y)`` regresses with the asymmetric loss ``|tau - 1[u < 0]| u^2`` onto
      ``u``'s target ``<x_hat, y> - psi_theta(x_hat)``, a lower bound of ``psi_theta^*(y)`` that
      an upper expectile (``tau`` near 1) pushes towards the maximum. Added to the cycle terms.
    * ``ascent_weight``: objective amortisation (Makkuva et al. 2020; Amos, ICLR 2023) beside the cycle terms:
      the amortised argmax ``grad psi_omega(y)`` also takes the gradient-ascent direction
      ``y - grad psi_theta(x_hat)`` of the conjugate's objective (``psi_theta`` held fixed), weighted per
      coordinate as R_Y; with ``correlation_on="both"`` each network gets it as the other's argmax. Where
      ``psi_theta`` is flat in a direction, R_Y's pull (the same residual times ``psi_theta``'s Hessian) is weak
      and this one is not.
    * ``lr_schedule``/``lr_final_factor`` and ``ema_decay``: features of the shared training loop
      (:class:`~w2gn.solvers.SolverConfig`), so every method has them.
    * ``cycle_warmup``/``cycle_warmup_factor``: for the first ``cycle_warmup`` steps the cycle weight is
      ``cycle_warmup_factor * lambda``. The cycle terms hold the two maps to be each other's inverse while
      both are still smooth; a lighter hold early lets the correlations move the forward map first
      (2-D toys, issue 24: 49 Gaussians at 3000 steps, on-mode 0.757 / 0.708 against 0.691 / 0.690 at
      1500 steps of 0.3x, two seeds; but 8 Gaussians at 30,000 steps end where the defaults do, 0.943 / 0.938
      against 0.944 / 0.949: a faster start, not a better end; ``benchmarks/results/toy.md``). With
      ``w2gn fit``'s other defaults, 1500 steps lowered hard-d8's 900 CPU-s error from 2.27 to 1.66 %
      (3 seeds) but let the fitted D = 64 pair collapse (every unit dead) by step 600, and the hard D = 16
      pair by step 242: the cycle terms are what holds fast input layers in place, so the option is off in
      every preset (``benchmarks/results/hard_pairs.md``, ninth and tenth sessions).
    * ``grad_clip``: relative gradient clipping (0 = off): each network's gradient norm is cut to ``grad_clip``
      times its running average (a 0.99 average of the clipped norms, seeded by the first step's). Adam turns
      one outlying gradient into ~30 learning rates of movement along it over the next steps (its first moment
      decays by 0.9 a step, its second by 0.999) and shrinks every later step while the outlier sits in the
      second moment; a relative cut needs no scale of the data or the loss.
    * ``init``: ``"identity"`` (pretrain both maps to the identity, C.1) or ``"linear"``
      (pretrain ``grad psi_theta`` to the OT map between Gaussian fits of P and Q and
      ``grad psi_omega`` to its inverse).

    Speed: ``gradient_mode`` (``"autograd"``: input-gradients by double backward, works for every
    potential; ``"analytic"``: the explicit gradient of potentials that have ``gradient_analytic``,
    e.g. :class:`~w2gn.networks.DenseICNN`, so the parameter update needs one plain backward, other
    potentials fall back to autograd); ``autocast_bf16`` (bfloat16 autocast of the loss, CUDA only,
    off by default); ``compile`` (``torch.compile`` the loss; needs ``gradient_mode="analytic"``, since
    compiled graphs do not double-backward; the first step compiles for minutes on a CPU).
    """

    # hidden, rank, activation, strong_convexity, betas, pretrain_*: PotentialConfig's (one home)
    dropout: float = 0.0
    lambda_cycle: float | None = None
    lambda_per_dim: float = 1.0
    lambda_cap: float | None = 50.0
    cycle_normalization: str = "coordinate"
    cycle_y: bool = True
    cycle_x: bool = False
    # each potential learns its own map from its own correlations (issue 17): the paper's "theta" leaves the
    # inverse to the cycle term alone, which inverts the forward map's errors where it contracts (fitted pair
    # D = 32, 150 CPU-s: inverse 63 % vs 2.9 %; offset Gaussian D = 128: forward 3.0 % vs 0.05 %)
    correlation_on: str = "both"
    stop_gradient: bool = True
    l1_penalty: float = 0.0
    refine_steps: int = 0
    refine_inverse_steps: int = 0
    refine_method: str = "lbfgs"
    expectile_weight: float = 0.0
    expectile: float = 0.99
    ascent_weight: float = 0.0
    cycle_warmup: int = 0
    cycle_warmup_factor: float = 0.3
    grad_clip: float = 0.0
    init: str = "identity"
    gradient_mode: str = "autograd"
    autocast_bf16: bool = False
    compile: bool = False

    def validate(self) -> None:
        super().validate()
        if self.gradient_mode not in ("autograd", "analytic"):
            raise W2GNUserError(f"gradient_mode must be 'autograd' or 'analytic', got {self.gradient_mode!r}")
        if self.autocast_bf16 and not str(self.device).startswith("cuda"):
            raise W2GNUserError("bf16 autocast is for CUDA only; drop --bf16 or use --device cuda")
        if self.compile and self.gradient_mode != "analytic":
            raise W2GNUserError("compile needs gradient_mode='analytic' (compiled graphs cannot double-backward)")
        if self.cycle_normalization not in ("coordinate", "sample"):
            raise W2GNUserError(f"cycle_normalization must be 'coordinate' or 'sample', got {self.cycle_normalization!r}")
        if self.correlation_on not in ("theta", "omega", "both"):
            raise W2GNUserError(f"correlation_on must be 'theta', 'omega' or 'both', got {self.correlation_on!r}")
        if self.lambda_cycle is not None and self.lambda_cycle < 0:
            raise W2GNUserError(f"lambda_cycle must be >= 0, got {self.lambda_cycle}")
        if not self.lambda_per_dim > 0:
            raise W2GNUserError(f"lambda_per_dim must be > 0, got {self.lambda_per_dim}")
        if self.lambda_cap is not None and not self.lambda_cap > 0:
            raise W2GNUserError(f"lambda_cap must be > 0 or None, got {self.lambda_cap}")
        if not (self.cycle_y or self.cycle_x):
            raise W2GNUserError("at least one of cycle_y / cycle_x must be on: W2GN needs a cycle regulariser")
        if not (self.grad_clip == 0 or self.grad_clip > 1):
            raise W2GNUserError(f"grad_clip must be 0 (off) or > 1 (a multiple of the running gradient norm), "
                                f"got {self.grad_clip}")
        if self.l1_penalty < 0:
            raise W2GNUserError(f"l1_penalty must be >= 0, got {self.l1_penalty}")
        if self.refine_steps < 0 or self.refine_inverse_steps < 0:
            raise W2GNUserError("refine_steps and refine_inverse_steps must be >= 0")
        if self.refine_method not in ("lbfgs", "newton"):
            raise W2GNUserError(f"refine_method must be 'lbfgs' or 'newton', got {self.refine_method!r}")
        if self.ascent_weight < 0:
            raise W2GNUserError(f"ascent_weight must be >= 0, got {self.ascent_weight}")
        if self.expectile_weight < 0 or not 0 < self.expectile < 1:
            raise W2GNUserError("expectile_weight must be >= 0 and expectile in (0, 1)")
        if self.cycle_warmup < 0 or not 0 <= self.cycle_warmup_factor <= 1:
            raise W2GNUserError(f"cycle_warmup must be >= 0 steps and cycle_warmup_factor in [0, 1], got "
                                f"{self.cycle_warmup} and {self.cycle_warmup_factor}")
        if self.init not in ("identity", "linear"):
            raise W2GNUserError(f"init must be 'identity' or 'linear', got {self.init!r}")

    def effective_lambda(self, dim: int, iteration: int | None = None) -> float:
        """The cycle weight for samples of ``dim`` coordinates at step ``iteration`` (``None``: after any warm-up)."""
        # None: the weight grows with D because the cycle terms are normalised per coordinate (C.4); lambda_cap
        # (C.4: 50) caps it, None = no cap
        lam = self.lambda_per_dim * dim if self.lambda_cycle is None else float(self.lambda_cycle)
        if self.lambda_cycle is None and self.lambda_cap is not None:
            lam = min(lam, float(self.lambda_cap))
        if iteration is not None and iteration < self.cycle_warmup:
            lam *= self.cycle_warmup_factor
        return lam


class W2GNSolver(Solver):
    """Wasserstein-2 Generative Network solver (non-minimax, cycle-regularised).

    >>> from w2gn import W2GNSolver, GaussianPair
    >>> pair = GaussianPair.random(2, seed=0)
    >>> fitted = W2GNSolver(iterations=200, progress=False).fit(pair.source, pair.target)
    """

    name = "w2gn"
    config_class = W2GNConfig
    config: W2GNConfig

    def build_potential(self, event_shape: tuple[int, ...], seed: int) -> ConvexPotential:
        """The default potential for samples of ``event_shape``: Dense ICNN for vectors, Conv ICNN for images."""
        c = self.config
        if len(event_shape) == 1:
            d = event_shape[0]
            return DenseICNN(d, c.hidden or default_hidden(d), rank=c.rank, activation=c.activation,
                             strong_convexity=c.strong_convexity, dropout=c.dropout, seed=seed)
        if len(event_shape) == 3:
            return ConvICNN(channels=event_shape[0], strong_convexity=c.strong_convexity, seed=seed)
        raise W2GNUserError(f"no default potential for samples of shape {event_shape}; pass potential=...")

    def _gradient(self, net: ConvexPotential, x: torch.Tensor) -> torch.Tensor:
        """``grad psi(x)``, differentiable w.r.t. the parameters, by the configured ``gradient_mode``."""
        if self.config.gradient_mode == "analytic" and hasattr(net, "gradient_analytic"):
            if not (net.training and getattr(net, "dropout", 0.0) > 0):  # the analytic form models no dropout
                return net.gradient_analytic(x)
        return net.gradient(x, create_graph=True)

    def _fused(self, net: ConvexPotential) -> bool:
        """Whether the step can take psi and grad psi at ``grad psi_omega(y)`` from one analytic sweep."""
        c = self.config
        return (c.gradient_mode == "analytic" and c.stop_gradient and c.cycle_y and not c.refine_steps
                and hasattr(net, "value_and_gradient_analytic")
                and not (net.training and getattr(net, "dropout", 0.0) > 0))

    def setup(self, p: Sampler, q: Sampler, generator: torch.Generator, potential: ConvexPotential | None = None) -> None:
        """Build psi_theta (or take ``potential``), pretrain it to the identity (C.1), copy it to psi_omega."""
        c = self.config
        self.grad_norms: torch.Tensor | None = None  # grad_clip's running norms (theta, omega); a checkpoint restores them
        theta = potential if potential is not None else self.build_potential(tuple(p.event_shape), c.seed)
        theta = theta.to(device=p.device, dtype=p.dtype)
        self.pretrain_loss = float("nan")
        n = 0 if self.restoring else c.pretrain_iterations  # a checkpoint overwrites the pretrained weights
        if c.init == "linear":
            omega = copy.deepcopy(theta)
            fwd, bwd = linear_init_maps(p, q, generator)
            if n:
                self.pretrain_loss = pretrain_identity(theta, [p], n, c.batch_size, c.pretrain_lr, c.pretrain_tol,
                                                       generator, target=fwd)
                pretrain_identity(omega, [q], n, c.batch_size, c.pretrain_lr, c.pretrain_tol, generator, target=bwd)
        else:
            if n:
                self.pretrain_loss = pretrain_identity(theta, [p, q], n, c.batch_size, c.pretrain_lr,
                                                       c.pretrain_tol, generator)
            omega = copy.deepcopy(theta)
        self.theta = theta
        self.omega = omega
        self.opt_theta = adam(self.theta, c)
        self.opt_omega = adam(self.omega, c)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"theta": self.theta, "omega": self.omega}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"theta": self.opt_theta, "omega": self.opt_omega}

    def current_map(self) -> TransportMap:
        c = self.config
        nets = self.final_modules()  # the weight averages when ema_decay is on
        fitted = TransportMap(nets["theta"], nets["omega"], method=self.name)
        if c.refine_inverse_steps:
            fitted.conjugate_options.update(refine_steps=int(c.refine_inverse_steps), refine_method=c.refine_method)
        return fitted

    def result(self, p: Sampler, q: Sampler) -> TransportMap:
        """The final map; with ``refine_inverse_steps``, the inverse it serves is the refined one only where
        ``psi_theta`` is the better potential by the dual values (:func:`~w2gn.inverse_choice.choose_inverse`,
        on :data:`INVERSE_CHOICE_SAMPLES` fresh samples per side), else the amortised ``grad psi_omega``;
        the choice and both values are in ``info["inverse_choice"]``."""
        fitted = super().result(p, q)
        c = self.config
        if c.refine_inverse_steps:
            nets = self.final_modules()
            gen = torch.Generator().manual_seed(int(c.seed) + 7919)  # its own stream: training's is untouched
            param = next(nets["theta"].parameters())
            x = p.sample(INVERSE_CHOICE_SAMPLES, gen).to(param.device, param.dtype)
            y = q.sample(INVERSE_CHOICE_SAMPLES, gen).to(param.device, param.dtype)
            choice = choose_inverse(nets["theta"], nets["omega"], x, y, int(c.refine_inverse_steps), c.refine_method)
            if not choice.refine:
                fitted.conjugate_options.pop("refine_steps", None)
                fitted.conjugate_options.pop("refine_method", None)
            fitted.info["inverse_choice"] = choice.to_dict()
        return fitted

    def refine(self, potential: ConvexPotential, y: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """``refine_steps`` of ``refine_method`` on ``max_x <x, y> - psi(x)`` from ``x0`` (no graph)."""
        c = self.config
        if c.refine_method == "newton":
            return solve_conjugate_newton(potential, y.detach(), x0=x0, max_iter=c.refine_steps, tol=0.0).x
        return solve_conjugate(potential, y.detach(), x0=x0, max_iter=c.refine_steps, tol=0.0).x

    def terms(self, dim: int) -> W2GNTerms:
        """The objective's terms and weights for samples of ``dim`` coordinates at the current step (from the
        configuration; the cycle weight follows ``cycle_warmup``)."""
        c = self.config
        return W2GNTerms(lam=c.effective_lambda(dim, self.iteration), normalization=c.cycle_normalization,
                         stop_gradient=c.stop_gradient, cycle_y=c.cycle_y, cycle_x=c.cycle_x,
                         refine=bool(c.refine_steps), expectile_weight=c.expectile_weight, expectile=c.expectile,
                         l1=c.l1_penalty, ascent_weight=c.ascent_weight)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective (eq. 12 and the configured extras, :func:`~w2gn.solvers.objective.w2gn_objective`)
        on batches ``x ~ P``, ``y ~ Q``: the loss to minimise and its detached parts."""
        c = self.config
        fwd, bwd = self.theta, self.omega
        refine = self.refine if c.refine_steps else None
        if c.correlation_on == "both":
            return self._symmetric_loss(x, y, refine)
        if c.correlation_on == "omega":  # the mirrored objective: the roles of P and Q swapped
            fwd, bwd, x, y = bwd, fwd, y, x
        return w2gn_objective(fwd, bwd, x, y, self.terms(x[0].numel()), self._gradient, refine, fused=self._fused(fwd))

    def _symmetric_loss(self, x: torch.Tensor, y: torch.Tensor, refine) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``correlation_on="both"``: eq. 12 for P -> Q plus eq. 12 for Q -> P, the networks' roles swapped.

        Each potential then learns its map from its own correlations (the dual of OT in its direction)
        instead of only by inverting the other through a cycle term. The mirrored copy's R_Y is
        ``E_P ||grad psi_omega(grad psi_theta(x)) - x||^2``, i.e. R_X (eq. 51), so both cycle terms are
        on, each once; ``cycle_x`` adds nothing more here."""
        shared = None
        if self._fused(self.theta) and self._fused(self.omega):
            # one sweep per network and batch: psi_theta and grad psi_theta at x are the mirrored half's argmax and
            # this half's correlation, psi_omega and grad psi_omega at y the other way round (two passes fewer)
            shared = (self.theta.value_and_gradient_analytic(x), self.omega.value_and_gradient_analytic(y))
        loss_f, parts_f = self.direction_loss(x, y, refine, inverse=False, shared=shared)
        loss_b, parts_b = self.direction_loss(x, y, refine, inverse=True, shared=shared)
        # each half reports zeros for the other's parts: the sum is the whole objective's parts
        return loss_f + loss_b, {k: parts_f[k] + parts_b[k] for k in parts_f}

    def direction_loss(self, x: torch.Tensor, y: torch.Tensor, refine, inverse: bool,
                       shared: tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
                       swap_value_terms: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One half of the two-sided objective: eq. 12 for P -> Q (``inverse=False``) or for Q -> P with
        the networks' roles swapped (``inverse=True``). The parts are named as the whole objective's
        (the mirrored half's R_Y is ``cycle_x``, its dual estimate ``w2_dual_inverse``), the other
        half's parts as zeros, so two processes can each compute one half and sum (see
        :class:`w2gn.distributed.DirectionSplitW2GNSolver`). ``shared``: the sweeps ``(psi_theta(x), grad psi_theta(x))``
        and ``(psi_omega(y), grad psi_omega(y))`` when one process computes both halves.

        ``swap_value_terms`` (one of two processes, each computing one half): this half's argmax sweep already
        holds the *other* half's value term (``E psi_omega(y)`` in the forward half, ``E psi_theta(x)`` in the
        mirrored one), and the other rank's sweep holds this half's. Each half then takes the other's value term
        in place of its own, so neither rank spends a forward pass on it. Loss and parts are linear in the value
        terms, so the two ranks' sums are the whole objective's (the swapped term is reported under the other
        half's names). Only where both networks have the analytic sweep (else ignored)."""
        terms = dataclasses.replace(self.terms(x[0].numel()), cycle_y=True, cycle_x=False)
        if swap_value_terms and shared is None and self._fused(self.theta) and self._fused(self.omega):
            return self._swapped_half(x, y, refine, inverse, terms)
        if not inverse:
            loss, parts = w2gn_objective(self.theta, self.omega, x, y, terms, self._gradient, refine,
                                         fused=self._fused(self.theta),
                                         theta_at_x=None if shared is None else shared[0][0],
                                         omega_at_y=None if shared is None else shared[1])
            zero = torch.zeros_like(parts["w2_dual"])
            return loss, {**parts, "cycle_x": zero, "cycle_x_rel": zero, "w2_dual_inverse": zero}
        # the L1 penalty already covers both networks once, in the forward half
        loss, parts = w2gn_objective(self.omega, self.theta, y, x, dataclasses.replace(terms, l1=0.0),
                                     self._gradient, refine, fused=self._fused(self.omega),
                                     theta_at_x=None if shared is None else shared[1][0],
                                     omega_at_y=None if shared is None else shared[0])
        out = {k: torch.zeros_like(v) for k, v in parts.items()}
        out.update(cycle_x=parts["cycle_y"], cycle_x_rel=parts["cycle_y_rel"], w2_dual_inverse=parts["w2_dual"])
        return loss, out

    def _swapped_half(self, x: torch.Tensor, y: torch.Tensor, refine, inverse: bool, terms: W2GNTerms
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """:meth:`direction_loss` with ``swap_value_terms``: this half without its own value term, plus the other's."""
        if not inverse:
            sweep = self.omega.value_and_gradient_analytic(y)  # this half's argmax grad psi_omega(y)
            loss, parts = w2gn_objective(self.theta, self.omega, x, y, terms, self._gradient, refine, fused=True,
                                         theta_at_x=sweep[0].new_zeros(x.shape[0]), omega_at_y=sweep)
            value = sweep[0].mean()  # E psi_omega(y): the mirrored half's value term
            zero = torch.zeros_like(parts["w2_dual"])
            return loss + value, {**parts, "cycle_x": zero, "cycle_x_rel": zero,
                                  "w2_dual_inverse": -2.0 * value.detach()}
        sweep = self.theta.value_and_gradient_analytic(x)  # the mirrored half's argmax grad psi_theta(x)
        loss, parts = w2gn_objective(self.omega, self.theta, y, x, dataclasses.replace(terms, l1=0.0), self._gradient,
                                     refine, fused=True, theta_at_x=sweep[0].new_zeros(y.shape[0]), omega_at_y=sweep)
        value = sweep[0].mean()  # E psi_theta(x): the forward half's value term
        out = {k: torch.zeros_like(v) for k, v in parts.items()}
        out.update(cycle_x=parts["cycle_y"], cycle_x_rel=parts["cycle_y_rel"], w2_dual_inverse=parts["w2_dual"],
                   correlation=value.detach(), w2_dual=-2.0 * value.detach())
        return loss + value, out

    def draw(self, p: Sampler, q: Sampler, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's batches ``x ~ P``, ``y ~ Q`` (``batch_size`` each); multi-process training overrides it."""
        n = self.config.batch_size
        return p.sample(n, generator), q.sample(n, generator)

    def step(self, iteration: int, p: Sampler, q: Sampler, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Algorithm 1, one iteration: sample, loss (eq. 12), one Adam step on each network, projection.

        Only optimisation plumbing: compile, bf16 autocast, the optimiser steps and the convexity
        projection; the learning rates are the loop's schedule's, the weight averages the loop's."""
        c = self.config
        x, y = self.draw(p, q, generator)
        if c.compile and getattr(self, "_compiled_loss", None) is None:
            self._compiled_loss = torch.compile(self.loss)
        loss_fn = self._compiled_loss if c.compile else self.loss
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=c.autocast_bf16):
            loss, parts = loss_fn(x, y)
        self.opt_theta.zero_grad(set_to_none=True)
        self.opt_omega.zero_grad(set_to_none=True)
        loss.backward()
        out = self.after_backward({"loss": loss.detach(), **parts})
        if c.grad_clip:
            self._clip_gradients(c.grad_clip)
        self.opt_theta.step()
        self.opt_omega.step()
        self.theta.project()
        self.omega.project()
        return out

    #: weight of the past in the running gradient norms of ``grad_clip``
    GRAD_NORM_DECAY = 0.99

    def _clip_gradients(self, factor: float) -> None:
        """Cut each network's gradient norm to ``factor`` x its running average (after the ranks' exchange,
        so every rank cuts alike). Tensor arithmetic only: no host sync on a GPU."""
        grads = [[t.grad for t in net.parameters() if t.grad is not None] for net in (self.theta, self.omega)]
        norms = torch.stack([torch.nn.utils.get_total_norm(gs) for gs in grads])
        if self.grad_norms is None:
            self.grad_norms = norms.detach().clone()  # seeded by the first step's norms
        scale = torch.clamp(factor * self.grad_norms / norms.clamp_min(1e-30), max=1.0)
        for gs, s in zip(grads, scale):
            torch._foreach_mul_(gs, s)
        self.grad_norms.mul_(self.GRAD_NORM_DECAY).add_((1 - self.GRAD_NORM_DECAY) * norms * scale)

    def extra_state(self) -> dict[str, Any]:
        state = super().extra_state()
        norms = getattr(self, "grad_norms", None)  # None before setup
        return {**state, "grad_norms": norms.clone()} if norms is not None else state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        if state.get("grad_norms") is not None:
            self.grad_norms = state["grad_norms"].clone()

    def after_backward(self, stats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Between the backward pass and the optimiser steps: the step's statistics as reported (multi-process
        training overrides it to combine the ranks' gradients and statistics)."""
        return stats
