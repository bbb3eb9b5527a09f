"""scikit-learn / POT-style estimators over the solvers: ``fit(Xs=..., Xt=...)``, ``transform``, ``inverse_transform``.

The classes follow POT's ``ot.da`` transport estimators (``ot.da.EMDTransport`` and friends): the
constructor takes plain hyper-parameters, :meth:`BaseMapTransport.fit` takes source samples ``Xs``
and target samples ``Xt``, and :meth:`~BaseMapTransport.transform` moves source samples to the
target domain. Unlike a discrete OT plan, the fitted object is a map ``T = grad psi_theta`` (paper,
Section 3), so it applies to samples never seen in training, at any batch size, and has an inverse.

They are scikit-learn estimators (``get_params``/``set_params``, :func:`sklearn.base.clone`,
:class:`sklearn.pipeline.Pipeline` for the source side, :mod:`sklearn.model_selection` with a scoring
callable). Training is delegated to :func:`w2gn.solvers.get_solver` and the result is the solver's
:class:`~w2gn.fitted_map.TransportMap`, exposed as ``map_``.

>>> import numpy as np
>>> from w2gn import W2GNTransport
>>> rng = np.random.default_rng(0)
>>> Xs, Xt = rng.normal(size=(500, 2)), rng.normal(2.0, 0.5, size=(400, 2))
>>> est = W2GNTransport(iterations=200, random_state=0).fit(Xs=Xs, Xt=Xt)
>>> est.transform(Xs[:3]).shape
(3, 2)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .errors import W2GNUserError

try:
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import check_array, check_is_fitted
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("w2gn's estimators need scikit-learn: pip install 'w2gn[sklearn]' (or pip install scikit-learn)") from exc
from .fitted_map import TransportMap
from .solvers import SOLVERS, SolverConfig, W2GNConfig, get_solver

# scikit-learn reads hyper-parameters from the constructors' signatures, so the defaults must be
# literal there: they are read from the solvers' config dataclasses, the one place they live
_BASE = SolverConfig()
_W2GN = W2GNConfig()


class BaseMapTransport(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Shared base of the transport estimators: one solver ``method``, hyper-parameters as arguments.

    The base class takes the solver's name; subclasses fix :attr:`method` (their constructors have no
    ``method`` argument) and may expose more solver options as constructor arguments
    (:meth:`_solver_options`). Everything else a solver accepts goes through ``solver_options``.

    Parameters
    ----------
    method : str
        Name of the solver in :data:`w2gn.solvers.SOLVERS` (``"w2gn"``, ``"lsot"``, ``"mm1"``, ``"mm2"``).
        Only the base class and the generic :class:`MapTransport` take it as an argument.
    iterations : int
        Training steps.
    batch_size : int
        Samples drawn from each of ``Xs`` and ``Xt`` per step.
    lr : float
        Adam learning rate.
    solver_options : dict or None
        Further keyword options of the solver's configuration (e.g. ``{"log_every": 50}``).
    random_state : int, numpy.random.RandomState or None
        Seeds the network initialisation and the sampling stream; ``None`` draws a seed from NumPy's
        global generator (as scikit-learn does).
    device : str
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``: where training and :meth:`transform` run.
    dtype : str
        ``"float32"`` or ``"float64"``: precision of the networks.
    verbose : bool or int
        Show a progress bar while fitting.

    Attributes
    ----------
    map_ : TransportMap
        The fitted map (``map_.forward`` is ``T``, ``map_.inverse`` is ``T^{-1}``).
    n_features_in_ : int
        Number of columns ``D`` seen in :meth:`fit`.
    history_ : list of dict
        The solver's training statistics (one row every ``log_every`` steps).
    """

    #: solver name in :data:`w2gn.solvers.SOLVERS`
    method: str = "w2gn"
    # (auto_wrap_output_keys=None: scikit-learn's set_output wrapper would require a positional X in
    # fit_transform, which breaks POT's fit_transform(Xs=..., Xt=...))

    def __init__(self, method: str = "w2gn", iterations: int = _BASE.iterations, batch_size: int = _BASE.batch_size,
                 lr: float = _BASE.lr, solver_options: dict[str, Any] | None = None, random_state=None,
                 device: str = _BASE.device, dtype: str = _BASE.dtype, verbose: bool = False) -> None:
        self._keep_params(locals())

    def _keep_params(self, arguments: dict[str, Any]) -> None:
        """Keep a constructor's ``arguments`` (its ``locals()``, taken first thing) as attributes of the same
        names, as given: scikit-learn's convention (:meth:`get_params` reads them back, :meth:`fit` uses them)."""
        for name, value in arguments.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    def _solver_options(self) -> dict[str, Any]:
        """Solver keyword options from this estimator's own hyper-parameters (subclasses extend)."""
        return {"iterations": self.iterations, "batch_size": self.batch_size, "lr": self.lr}

    def _seed(self) -> int:
        rs = self.random_state
        if isinstance(rs, (int, np.integer)) and not isinstance(rs, bool):
            return int(rs)
        return int(check_random_state(rs).randint(0, 2**31 - 1))

    def _build_solver(self):
        opts = self._solver_options()
        opts.update(dict(self.solver_options or {}))
        opts.update(seed=self._seed(), device=self.device, dtype=self.dtype, progress=bool(self.verbose))
        return get_solver(self.method, **opts)

    # ------------------------------------------------------------------------------ validation
    def _validate(self, X, name: str, reset: bool) -> tuple[Any, bool]:
        """``(array or tensor, was_tensor)``; checks 2-D, finite, numeric, and the column count."""
        if X is None:
            raise W2GNUserError(f"{type(self).__name__}: {name} is required (samples as rows, shape (N, D))")
        if isinstance(X, torch.Tensor):
            if X.dim() != 2 or not X.is_floating_point():
                raise W2GNUserError(f"{name}: expected a 2-D float tensor (N, D), got shape {tuple(X.shape)} of {X.dtype}")
            if X.shape[0] < 1 or not bool(torch.isfinite(X).all()):
                raise W2GNUserError(f"{name}: needs at least one row and finite values only")
            cols, arr, is_tensor = X.shape[1], X, True
        else:
            try:
                arr = check_array(X, dtype=[np.float64, np.float32], ensure_2d=True, input_name=name)
            except (ValueError, TypeError) as exc:
                raise W2GNUserError(f"{name}: {exc}") from exc
            cols, is_tensor = arr.shape[1], False
        if reset:
            self.n_features_in_ = int(cols)
        elif cols != self.n_features_in_:
            raise W2GNUserError(
                f"{name} has {cols} columns but {type(self).__name__} was fitted on {self.n_features_in_}"
            )
        return arr, is_tensor

    # ---------------------------------------------------------------------------------- fitting
    def fit(self, Xs=None, ys=None, Xt=None, yt=None) -> BaseMapTransport:
        """Fit the map from source samples ``Xs`` (rows, ``(Ns, D)``) to target samples ``Xt`` (``(Nt, D)``).

        ``ys``/``yt`` (labels) are accepted for POT compatibility and ignored: the map is fitted
        between the unlabelled distributions. ``Ns`` and ``Nt`` may differ. In a
        :class:`~sklearn.pipeline.Pipeline`, pass the target as ``pipe.fit(Xs, <step>__Xt=Xt)``.

        Returns ``self``.
        """
        xs, _ = self._validate(Xs, "Xs", reset=True)
        xt, _ = self._validate(Xt, "Xt", reset=False)
        solver = self._build_solver()
        self.map_: TransportMap = solver.fit(xs, xt)
        self.history_: list[dict[str, float]] = list(solver.history)
        return self

    def fit_transform(self, Xs=None, ys=None, Xt=None, yt=None):
        """:meth:`fit` then :meth:`transform` of ``Xs``."""
        return self.fit(Xs, ys, Xt, yt).transform(Xs)

    # ------------------------------------------------------------------------------- applying
    def _map(self, X, name: str, inverse: bool, batch_size: int):
        check_is_fitted(self, "map_")
        arr, is_tensor = self._validate(X, name, reset=False)
        fitted = self.map_
        if is_tensor:
            out = fitted.inverse(arr, batch_size) if inverse else fitted.forward(arr, batch_size)
            return out.to(arr.dtype)
        out = fitted.inverse(arr, batch_size) if inverse else fitted.forward(arr, batch_size)
        # scikit-learn keeps the caller's float precision
        return np.asarray(out).astype(arr.dtype, copy=False)

    def transform(self, Xs, batch_size: int = 8192):
        """Map source samples to the target domain: ``T(Xs) = grad psi_theta(Xs)``, shape ``(N, D)``.

        Works on any rows, not only those used in :meth:`fit`. NumPy in gives NumPy out (in the
        input's float dtype); a torch tensor gives a tensor on its device.
        """
        return self._map(Xs, "Xs", inverse=False, batch_size=batch_size)

    def inverse_transform(self, Xt, batch_size: int = 8192):
        """Map target samples back to the source domain: ``T^{-1}(Xt)``, shape ``(N, D)``.

        ``grad psi_omega(Xt)`` when the method trains a conjugate network (W2GN), otherwise the
        numerical conjugate ``argmax_x <x, y> - psi_theta(x)`` (see :meth:`TransportMap.inverse`).
        """
        return self._map(Xt, "Xt", inverse=True, batch_size=batch_size)

    def w2_squared(self, Xs, Xt, estimator: str = "dual") -> float:
        """Estimate of ``W2^2`` between the source and target distributions (:meth:`TransportMap.w2_squared`)."""
        check_is_fitted(self, "map_")
        xs, _ = self._validate(Xs, "Xs", reset=False)
        xt, _ = self._validate(Xt, "Xt", reset=False)
        return self.map_.w2_squared(xs, xt, estimator=estimator)


class MapTransport(BaseMapTransport):
    """Transport estimator for any registered solver, chosen by name (``method``).

    Prefer the named classes (:class:`W2GNTransport`, :class:`LSOTTransport`, ...); this one is for
    methods registered by users (``w2gn.solvers.SOLVERS[name] = MySolver``). Parameters as in
    :class:`BaseMapTransport`.
    """


class W2GNTransport(BaseMapTransport):
    """W2GN map estimator (the paper's method: two ICNNs, non-minimax cycle-regularised objective, eq. 12).

    See :class:`w2gn.solvers.W2GNConfig` for every other option of the solver (pass them in
    ``solver_options``).

    Parameters
    ----------
    iterations, batch_size, lr, solver_options, random_state, device, dtype, verbose
        As in :class:`BaseMapTransport`.
    hidden : list of int or None
        Dense ICNN widths ``[h0, h1, ...]``; ``None`` = about ``2D`` units
        (:func:`w2gn.solvers.default_hidden`).
    rank : int
        Rank of the convex-quadratic layers (B.2).
    lambda_cycle : float or None
        Weight of the cycle regulariser ``R_Y`` (eq. 11, per-coordinate normalisation);
        ``None`` = ``min(D, 50)`` (C.4; ``w2gn fit`` uses ``D / 2``, uncapped).
    cycle_x : bool
        Also use the mirrored regulariser ``R_X`` (eq. 51).
    pretrain_iterations : int
        Steps of the identity pretraining of C.1 (0 = none).
    """

    method = "w2gn"

    def __init__(self, iterations: int = _W2GN.iterations, batch_size: int = _W2GN.batch_size, lr: float = _W2GN.lr,
                 hidden: list[int] | None = _W2GN.hidden, rank: int = _W2GN.rank,
                 lambda_cycle: float | None = _W2GN.lambda_cycle, cycle_x: bool = _W2GN.cycle_x,
                 pretrain_iterations: int = _W2GN.pretrain_iterations, solver_options: dict[str, Any] | None = None,
                 random_state=None, device: str = _W2GN.device, dtype: str = _W2GN.dtype, verbose: bool = False) -> None:
        self._keep_params(locals())

    def _solver_options(self) -> dict[str, Any]:
        opts = super()._solver_options()
        opts.update(hidden=None if self.hidden is None else list(self.hidden), rank=self.rank,
                    lambda_cycle=self.lambda_cycle, cycle_x=self.cycle_x, pretrain_iterations=self.pretrain_iterations)
        return opts


class _BaselineTransport(BaseMapTransport):
    """Constructor shared by the baseline estimators: the common options, the rest in ``solver_options``."""

    def __init__(self, iterations: int = _BASE.iterations, batch_size: int = _BASE.batch_size, lr: float = _BASE.lr,
                 solver_options: dict[str, Any] | None = None, random_state=None, device: str = _BASE.device,
                 dtype: str = _BASE.dtype, verbose: bool = False) -> None:
        self._keep_params(locals())


class LSOTTransport(_BaselineTransport):
    """Large-scale OT baseline (Seguy et al., 2017; the paper's "LSOT"): solver ``"lsot"``.

    Parameters as in :class:`BaseMapTransport`; method-specific options go in ``solver_options``.
    """

    method = "lsot"


class MM1Transport(_BaselineTransport):
    """Minimax ICNN baseline MM-1 (Taghvaei & Jalali, 2019): solver ``"mm1"``.

    Parameters as in :class:`BaseMapTransport`; method-specific options go in ``solver_options``.
    """

    method = "mm1"


class MM2Transport(_BaselineTransport):
    """Minimax ICNN baseline MM-2 (Makkuva et al., 2020): solver ``"mm2"``.

    Parameters as in :class:`BaseMapTransport`; method-specific options go in ``solver_options``.
    """

    method = "mm2"


#: solver name -> estimator class
ESTIMATORS: dict[str, type[BaseMapTransport]] = {
    "w2gn": W2GNTransport,
    "lsot": LSOTTransport,
    "mm1": MM1Transport,
    "mm2": MM2Transport,
}


def estimator_for(method: str) -> type[BaseMapTransport]:
    """The estimator class of solver ``method`` (raises :class:`W2GNUserError` for unknown names)."""
    if method not in ESTIMATORS:
        raise W2GNUserError(f"no estimator for method {method!r}; choose one of {', '.join(sorted(ESTIMATORS))} "
                            "or use MapTransport(method=...)")
    return ESTIMATORS[method]


__all__ = ["BaseMapTransport", "MapTransport", "W2GNTransport", "LSOTTransport", "MM1Transport", "MM2Transport",
           "ESTIMATORS", "estimator_for", "SOLVERS"]
