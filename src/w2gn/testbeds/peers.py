"""Peer benchmark: w2gn against the tools a user would pick instead, on pairs with a known OT map (issue 22).

Every method is a small adapter with one interface: :meth:`PeerMethod.fit` trains on a
:class:`~w2gn.testbeds.pairs.BenchmarkPair` within a time budget and, whenever :class:`Session` says an
evaluation is due, hands it the current forward and inverse maps. The session scores them on one fixed
evaluation set (forward and inverse L2-UVP) with its training clock paused, so evaluation never counts
as training time. Methods:

* ``w2gn-fit``: :func:`~w2gn.solvers.presets.preset` ``"fit"`` (what ``w2gn fit`` trains with: cosine schedule
  aimed at the budget by :class:`~w2gn.solvers.TimeBudget`, EMA, inverse refinement);
* ``w2gn-paper``: preset ``"paper"`` (Algorithm 1 and Appendix C.4 as printed);
* ``ott-w2`` / ``ott-w2-amortized`` / ``ott-expectile``: OTT-JAX's ``W2NeuralDual`` (set up as OTT's neural-dual
  tutorial does, with and without its L-BFGS conjugate fine-tuning) and ``ExpectileNeuralDual`` (its defaults);
* ``pot-emd`` / ``pot-sinkhorn``: POT's ``EMDTransport`` / ``SinkhornTransport`` with their defaults, fitted on n
  samples per side for n = 250, 500, 1000, ... while the budget lasts; a point's seconds are that n's fit time.

Experiment code: nothing in the core imports this module, and JAX/OTT are imported only inside the OTT
adapter (an optional extra, ``pip install w2gn[peers]``).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import W2GNUserError
from ..metrics import l2_uvp
from .pairs import BenchmarkPair

#: a map as the session sees it: float32 array (n, D) in, anything :func:`numpy.asarray` takes (n, D) out
MapFn = Callable[[np.ndarray], Any]

#: the XLA options that keep JAX on one CPU thread (``taskset`` pins the process to one core on top)
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


class BudgetSpent(Exception):
    """Raised inside a peer's own training loop (from its callback) to end it when the budget is spent."""


def eval_times(budget_s: float, first: float = 0.25, per_decade: int = 6) -> list[float]:
    """Log-spaced evaluation times ``first, first * r, ...`` below ``budget_s`` (``r = 10 ** (1 / per_decade)``).

    Log spacing gives every decade of the log-log convergence plot the same number of points; the
    end of the budget is always evaluated too (by :meth:`Session.finish`)."""
    if first <= 0 or per_decade <= 0:
        raise W2GNUserError("eval_times needs first > 0 and per_decade > 0")
    out, t, r = [], float(first), 10.0 ** (1.0 / per_decade)
    while t < budget_s:
        out.append(t)
        t *= r
    return out


class Session:
    """One method's run on one pair: the training clock, the evaluation schedule and the curve.

    ``clock="wall"`` counts :func:`time.perf_counter` seconds, ``"process"`` the CPU seconds of this process
    (every thread; with one thread on a shared core this is the time the method really got). Evaluation
    time is subtracted from both.
    """

    def __init__(self, pair: BenchmarkPair, budget_s: float, n_eval: int = 4096, clock: str = "process",
                 times: Sequence[float] | None = None) -> None:
        if clock not in ("wall", "process"):
            raise W2GNUserError(f"clock must be 'wall' or 'process', got {clock!r}")
        self.pair, self.budget_s = pair, float(budget_s)
        self._now = time.perf_counter if clock == "wall" else time.process_time
        ev = pair._eval  # the pair's fixed evaluation samples: x ~ P and y = T*(x), float64
        self._x, self._y = ev["x"][:n_eval], ev["y"][:n_eval]
        self._x32, self._y32 = self._x.float().numpy(), self._y.float().numpy()
        self._var_p, self._var_q = pair.source_variance, pair.target_variance
        self._times = list(times if times is not None else eval_times(budget_s))
        self.curve: list[dict[str, float]] = []
        self._start = self._now()
        self._paused = 0.0

    def elapsed(self) -> float:
        """Training seconds so far (evaluations excluded)."""
        return self._now() - self._start - self._paused

    def remaining(self) -> float:
        """Training seconds left in the budget."""
        return self.budget_s - self.elapsed()

    def spent(self) -> bool:
        """Whether the budget is used up."""
        return self.elapsed() >= self.budget_s

    def due(self, seconds: float | None = None) -> bool:
        """Whether the next scheduled evaluation time has been reached (at ``seconds``, default now)."""
        t = self.elapsed() if seconds is None else seconds
        return bool(self._times) and t >= self._times[0]

    def score(self, forward: MapFn, inverse: MapFn) -> dict[str, float]:
        """Forward and inverse L2-UVP (%) of the two maps on the fixed evaluation set (no clock involved)."""
        out = {}
        for key, fn, inp, truth, var in (("forward_uvp", forward, self._x32, self._y, self._var_q),
                                         ("inverse_uvp", inverse, self._y32, self._x, self._var_p)):
            try:
                pred = torch.as_tensor(np.asarray(fn(inp), dtype=np.float64))
                out[key] = float(l2_uvp(pred, truth, var)) if pred.shape == truth.shape else math.nan
            except (FloatingPointError, ValueError, RuntimeError) as exc:  # a diverged map is a result, not a crash
                out[key], out[f"{key}_error"] = math.nan, f"{type(exc).__name__}: {exc}"[:200]
        return out

    def report(self, forward: MapFn, inverse: MapFn, steps: int | None = None, seconds: float | None = None,
               **extra: Any) -> None:
        """Record one curve point at ``seconds`` of training (default: now), evaluating with the clock paused.

        ``seconds`` is given by methods whose training time is not the elapsed time (POT: one fit per n)."""
        t_mark = self._now()
        t = self.elapsed() if seconds is None else float(seconds)
        while self._times and self._times[0] <= t:  # every scheduled time up to t is served by this point
            self._times.pop(0)
        row = {"seconds": t, **self.score(forward, inverse), **extra}
        if steps is not None:
            row["steps"] = int(steps)
        self.curve.append(row)
        self._paused += self._now() - t_mark

    def finish(self, forward: MapFn, inverse: MapFn, steps: int | None = None, **extra: Any) -> None:
        """Record the final point (the map the method ends with), unless the last point already is it."""
        if self.curve and self.curve[-1].get("final"):
            return
        self.report(forward, inverse, steps, final=True, **extra)


class PeerMethod(Protocol):
    """What every adapter provides."""

    name: str

    def unavailable(self) -> str | None:
        """``None`` if the method can run here, else why not (e.g. an optional package is missing)."""

    def fit(self, pair: BenchmarkPair, session: Session, seed: int = 0) -> dict[str, Any]:
        """Train on ``pair`` until ``session`` is spent, reporting maps when due; return notes (settings used)."""


# ------------------------------------------------------------------------------------------------ w2gn
class W2GNMethod:
    """w2gn with a named preset (:mod:`w2gn.solvers.presets`); the budget ends the run.

    For ``"fit"`` the cosine schedule's horizon is re-aimed at the budget by :class:`~w2gn.solvers.TimeBudget`,
    exactly as ``w2gn fit --time-budget`` does; ``"paper"`` has a constant learning rate, so only the stop
    matters there. Evaluations can only happen at the solver's log steps: ``log_every`` is ``w2gn fit``'s own
    (100); every log step takes statistics and a last-good snapshot, which counts as training time: logging
    every 10 steps cost w2gn-fit 14-18 % of its steps in a 60-second budget (D = 8: 1884 against 2178 steps;
    D = 16: 1993 against 2436)."""

    def __init__(self, preset_name: str, name: str | None = None, log_every: int = 100) -> None:
        self.preset_name, self.name, self.log_every = preset_name, name or f"w2gn-{preset_name}", log_every

    def unavailable(self) -> str | None:
        return None

    def fit(self, pair: BenchmarkPair, session: Session, seed: int = 0) -> dict[str, Any]:
        from ..solvers import TimeBudget, W2GNConfig, W2GNSolver
        from ..solvers.presets import preset

        opts = preset(self.preset_name, pair.dim)
        # the budget, not the count, ends the run (as in w2gn fit, whose preset count is set high for that reason)
        opts["iterations"] = 10_000_000
        solver = W2GNSolver(W2GNConfig(**{**opts, "seed": int(seed), "log_every": self.log_every, "progress": False,
                                          "device": "cpu", "dtype": "float32"}))
        budget = TimeBudget(solver, session.budget_s)

        def maps(fitted) -> tuple[MapFn, MapFn]:
            return (lambda a: fitted.forward(torch.from_numpy(a)).detach(),
                    lambda a: fitted.inverse(torch.from_numpy(a)).detach())

        def callback(iteration: int, live, row: dict[str, float]) -> bool:
            t = session.elapsed()
            if session.due(t):
                session.report(*maps(live), steps=iteration, seconds=t)
            return budget.aim(iteration, t)  # also re-aims a cosine schedule's horizon at the budget

        fitted = solver.fit(pair.source, pair.target, callback=callback)
        session.finish(*maps(fitted), steps=int(solver.iteration))
        used = solver.config.to_dict()
        return {"preset": self.preset_name, **{k: used[k] for k in sorted(opts) if k in used and k != "iterations"}}


# ------------------------------------------------------------------------------------------------- POT
class POTMethod:
    """POT's discrete plans with the barycentric map, out of sample (``transform`` / ``inverse_transform``).

    Fits on ``n`` fresh samples per side for ``n = n0, 2 n0, 4 n0, ...`` up to ``n_max`` (16,000 points per
    side already need two 2 GB matrices); each fit is one curve point at its own fit seconds. A next ``n`` is
    tried only if its predicted fit time (the last growth factor of the fit time, at least 4: EMD's cost grows
    faster than n^2) fits in what is left of the budget, so the method's fits together stay within it."""

    def __init__(self, kind: str, n0: int = 250, n_max: int = 16_000, emd_max_iter: int = 10_000_000) -> None:
        if kind not in ("emd", "sinkhorn"):
            raise W2GNUserError(f"unknown POT method {kind!r}")
        self.kind, self.name, self.n0, self.n_max = kind, f"pot-{kind}", int(n0), int(n_max)
        # EMDTransport's default max_iter (1e5) stops the network simplex before optimality from n = 2000 on
        # (POT warns "numItermax reached"); a user raises it as the warning says, so the plan is the exact one
        self.emd_max_iter = int(emd_max_iter)

    def unavailable(self) -> str | None:
        try:
            import ot  # noqa: F401
        except ImportError as exc:
            return f"POT is not installed ({exc})"
        return None

    def fit(self, pair: BenchmarkPair, session: Session, seed: int = 0) -> dict[str, Any]:
        import ot

        g = torch.Generator().manual_seed(int(seed))
        n, last, growth, total = self.n0, None, 4.0, 0.0
        while n <= self.n_max:
            xs = pair.source.sample(n, g).float().numpy()
            xt = pair.target.sample(n, g).float().numpy()
            t0 = session.elapsed()
            model = ot.da.EMDTransport(max_iter=self.emd_max_iter) if self.kind == "emd" else ot.da.SinkhornTransport()
            model.fit(Xs=xs, Xt=xt)
            fit_s = session.elapsed() - t0
            total += fit_s
            session.report(lambda a, m=model: m.transform(Xs=a), lambda a, m=model: m.inverse_transform(Xt=a),
                           seconds=fit_s, n=n, cumulative_seconds=total)
            if last is not None and last > 0.05:  # tiny fits time noise, not the growth of the cost
                growth = max(4.0, fit_s / last)
            last = fit_s
            if fit_s * growth > session.budget_s - total:
                break
            n *= 2
        if session.curve:
            session.curve[-1]["final"] = True
        options = "POT defaults" + (f", max_iter={self.emd_max_iter}" if self.kind == "emd" else "")
        return {"class": "EMDTransport" if self.kind == "emd" else "SinkhornTransport", "options": options,
                "n_max_fitted": session.curve[-1]["n"] if session.curve else None, "pot_version": ot.__version__}


# ------------------------------------------------------------------------------------------------- OTT
def configure_jax_one_thread() -> None:
    """Put JAX on the CPU with one XLA thread. Must run before JAX is first imported to take effect."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "intra_op_parallelism_threads" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {XLA_ONE_THREAD}".strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


class OTTMethod:
    """OTT-JAX's neural duals (``ott.neural.methods``), set up as OTT documents them.

    ``"w2"``: ``W2NeuralDual`` as OTT's neural-dual tutorial configures it: ICNN f (widths 64 x 4) initialised
    from the Gaussian map between the samples, an MLP g that outputs the gradient (``PotentialMLP``, widths
    64 x 4, ``is_potential=False``), Adam 1e-3 cosine-decayed to 1e-5 (f: betas 0.5, 0.5; g: 0.9, 0.999), batch
    1024, and the solver's default L-BFGS fine-tuning of the conjugate (in training and in the inverse map).
    The cosine decay runs over the time budget (its horizon in steps is unknown in advance), as w2gn's does.
    ``"w2-amortized"``: the same with ``conjugate_solver=None`` (the amortised g only), the one change a user
    would make when a fine-tuned step is too slow for the budget. ``"expectile"``: ``ExpectileNeuralDual``
    with every default (MLP potentials 128 x 4, Adam 3e-4, expectile 0.99), batch 1024."""

    def __init__(self, kind: str, batch_size: int = 1024, pos_weights: bool = False, name: str | None = None) -> None:
        if kind not in ("w2", "w2-amortized", "expectile"):
            raise W2GNUserError(f"unknown OTT method {kind!r}")
        self.kind, self.name, self.batch_size = kind, name or f"ott-{kind}", int(batch_size)
        self.pos_weights = bool(pos_weights)

    def unavailable(self) -> str | None:
        configure_jax_one_thread()
        try:
            import ott.neural.methods.expectile_neural_dual  # noqa: F401
            import ott.neural.methods.neuraldual  # noqa: F401
        except ImportError as exc:
            return f"ott-jax (with jax, optax, flax) is not installed: {exc} (pip install 'w2gn[peers]')"
        return None

    def fit(self, pair: BenchmarkPair, session: Session, seed: int = 0) -> dict[str, Any]:
        configure_jax_one_thread()
        import jax
        import jax.numpy as jnp
        import optax
        import ott

        g = torch.Generator().manual_seed(int(seed))

        def loader(sampler):
            while True:
                yield sampler.sample(self.batch_size, g).float().numpy()

        src, tgt = loader(pair.source), loader(pair.target)
        rng = jax.random.PRNGKey(int(seed))

        def lr_hook(frac: float) -> None:  # constant learning rate (ExpectileNeuralDual's default optimiser)
            return None

        if self.kind == "expectile":
            from ott.neural.methods.expectile_neural_dual import ExpectileNeuralDual

            solver = ExpectileNeuralDual(pair.dim, num_train_iters=10_000_000, rng=rng)
            notes: dict[str, Any] = {"class": "ExpectileNeuralDual", "options": "defaults", "batch_size": self.batch_size}
        else:
            from ott.neural.methods.neuraldual import W2NeuralDual
            from ott.neural.networks import icnn, potentials

            # the tutorial's Gaussian initialisation of f, from samples of both sides
            init_n = 4096
            xs0 = jnp.asarray(pair.source.sample(init_n, g).float().numpy())
            xt0 = jnp.asarray(pair.target.sample(init_n, g).float().numpy())
            neural_f = icnn.ICNN(dim_data=pair.dim, dim_hidden=[64, 64, 64, 64], gaussian_map_samples=(xs0, xt0))
            neural_g = potentials.PotentialMLP(dim_hidden=[64, 64, 64, 64], is_potential=False)
            # the learning rate lives in the optimiser state (inject_hyperparams) so the cosine decay can follow
            # the clock: the tutorial's cosine_decay_schedule needs the number of steps, unknown under a time budget
            opt_f = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3, b1=0.5, b2=0.5)
            opt_g = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3, b1=0.9, b2=0.999)
            # without fine-tuning the default 'regression' amortisation loss is identically zero (g regresses onto its
            # own detached output) and g never learns: the amortised variant needs Makkuva et al.'s 'objective' loss
            kwargs = {} if self.kind == "w2" else {"conjugate_solver": None, "amortization_loss": "objective"}
            solver = W2NeuralDual(pair.dim, neural_f, neural_g, opt_f, opt_g, num_train_iters=10_000_000, rng=rng,
                                  pos_weights=self.pos_weights, **kwargs)

            def lr_hook(frac: float) -> None:
                lr = 1e-3 * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac))))
                for state in (solver.state_f, solver.state_g):
                    state.opt_state.hyperparams["learning_rate"] = jnp.asarray(lr, dtype=jnp.float32)

            notes = {"class": "W2NeuralDual", "f": "ICNN [64]*4, Gaussian init", "g": "PotentialMLP [64]*4 (gradient)",
                     "optimizer": "Adam 1e-3 cosine to 1e-5 over the budget; f betas (0.5, 0.5), g (0.9, 0.999)",
                     "fine_tuning": "default L-BFGS conjugate solver" if self.kind == "w2"
                     else "none (amortised g, amortization_loss='objective')",
                     "pos_weights": self.pos_weights, "batch_size": self.batch_size}
        notes["ott_version"] = ott.__version__
        notes["jax_version"] = jax.__version__

        maps = _ott_maps(solver, self.kind)
        steps = 0

        def callback(step: int, pots) -> None:
            nonlocal steps
            steps = step + 1
            jax.block_until_ready(solver.state_f.params)  # JAX runs ahead asynchronously: wait before reading the clock
            t = session.elapsed()
            if session.due(t):
                session.report(*maps(), steps=steps, seconds=t)
            if t >= session.budget_s:
                raise BudgetSpent
            lr_hook(t / session.budget_s)

        try:
            # OTT's loop draws a tqdm bar over num_train_iters (set huge: the budget ends the run); keep it off the log
            with contextlib.redirect_stderr(io.StringIO()):
                solver(src, tgt, src, tgt, callback=callback)
        except BudgetSpent:
            pass
        session.finish(*maps(), steps=steps)
        return notes


def _ott_maps(solver: Any, kind: str) -> Callable[[], tuple[MapFn, MapFn]]:
    """Forward and inverse maps of an OTT neural dual's current state, each compiled once per run.

    The training states are arguments of the compiled functions (not constants baked into them), so a new
    evaluation point reuses the compilation: compiling the fine-tuned inverse (an L-BFGS solve per point)
    takes tens of seconds. For ``W2NeuralDual`` the maps are written from its parts: forward ``grad f``, inverse
    ``g`` (the MLP outputs the gradient) refined by the solver's own conjugate solver from there, as its
    fine-tuned conjugate does. Its ``to_dual_potentials().transport`` was not used: with the squared-Euclidean
    cost of OTT 0.6.0 it returned ``x/2 + grad f(x)/2`` (factor-2 convention), far from the map it trains.
    ``ExpectileNeuralDual``'s own ``transport`` is used as is."""
    import jax
    import jax.numpy as jnp

    if kind == "expectile":
        def pots(sf, sg):
            # to_dual_potentials reads the solver's states: lend it the traced ones for the trace only
            saved = solver.state_f, solver.state_g
            solver.state_f, solver.state_g = sf, sg
            try:
                return solver.to_dual_potentials()
            finally:
                solver.state_f, solver.state_g = saved

        fwd = jax.jit(lambda sf, sg, x: pots(sf, sg).transport(x, forward=True))
        inv = jax.jit(lambda sf, sg, y: pots(sf, sg).transport(y, forward=False))
    else:
        fwd = jax.jit(lambda sf, sg, x: sf.potential_gradient_fn(sf.params)(x))
        conj = solver.conjugate_solver

        def inverse(sf, sg, y):
            x_hat = sg.potential_gradient_fn(sg.params)(y)
            if conj is None:
                return x_hat
            f_value = sf.potential_value_fn(sf.params)
            return jax.vmap(lambda yi, xi: conj.solve(f_value, yi, x_init=xi).grad)(y, x_hat)

        inv = jax.jit(inverse)

    def current() -> tuple[MapFn, MapFn]:
        sf, sg = solver.state_f, solver.state_g
        return (lambda a: np.asarray(fwd(sf, sg, jnp.asarray(a))), lambda a: np.asarray(inv(sf, sg, jnp.asarray(a))))

    return current


# ------------------------------------------------------------------------------------------------ registry
def peer_methods() -> dict[str, PeerMethod]:
    """Every method of the peer benchmark by name, w2gn's first."""
    methods: list[PeerMethod] = [W2GNMethod("fit"), W2GNMethod("paper"), OTTMethod("w2"), OTTMethod("w2-amortized"),
                                 OTTMethod("expectile"), POTMethod("emd"), POTMethod("sinkhorn")]
    return {m.name: m for m in methods}


#: the method every peer is compared with
REFERENCE = "w2gn-fit"


def run_method(method: PeerMethod, pair: BenchmarkPair, budget_s: float, seed: int = 0, n_eval: int = 4096,
               clock: str = "process") -> dict[str, Any]:
    """Run one method on one pair: ``{"curve": [...], "notes": {...}, "error": str | None, "wall_seconds": ...}``.

    A method that raises is recorded with its error and whatever curve it had (the benchmark goes on)."""
    torch.manual_seed(int(seed))
    session = Session(pair, budget_s, n_eval=n_eval, clock=clock)
    t0 = time.perf_counter()
    notes: dict[str, Any] = {}
    error = None
    try:
        notes = method.fit(pair, session, seed=seed)
    except Exception as exc:  # noqa: BLE001 - a peer failing is a result to report, not a reason to stop the others
        error = f"{type(exc).__name__}: {exc}"[:500]
    return {"method": method.name, "curve": session.curve, "notes": notes, "error": error,
            "wall_seconds": time.perf_counter() - t0}


def run_peers(dims: Sequence[int], methods: Sequence[str] | None = None, budget_s: float = 900.0, family: str = "fitted",
              seed: int = 0, n_eval: int = 4096, clock: str = "process",
              log: Callable[[str], None] = lambda _msg: None) -> dict[str, Any]:
    """The peer benchmark: every available method on the ``family`` pair at each of ``dims``, one after another.

    Returns plain data: ``{"config", "not_run": {method: reason}, "pairs": {str(D): {"pair", "baselines",
    "runs": {method: run}}}}`` (see :func:`run_method`)."""
    from .pairs import load_pair

    registry = peer_methods()
    names = list(methods) if methods is not None else list(registry)
    unknown = [m for m in names if m not in registry]
    if unknown:
        raise W2GNUserError(f"unknown peer method(s) {unknown}; choose from {', '.join(registry)}")
    not_run = {}
    for name in names:
        reason = registry[name].unavailable()
        if reason:
            not_run[name] = reason
            log(f"not run: {name}: {reason}")
    runnable = [n for n in names if n not in not_run]
    result: dict[str, Any] = {
        "config": {"dims": list(dims), "methods": names, "budget_s": budget_s, "family": family, "seed": seed,
                   "n_eval": n_eval, "clock": clock, "torch_threads": torch.get_num_threads()},
        "not_run": not_run, "pairs": {}}
    for dim in dims:
        pair = load_pair(int(dim), family=family)
        entry = {"pair": pair.name, "baselines": dict(pair.baselines), "runs": {}}
        result["pairs"][str(dim)] = entry
        for name in runnable:
            log(f"D={dim}: {name} ({budget_s:g} s budget)")
            run = run_method(registry[name], pair, budget_s, seed=seed, n_eval=n_eval, clock=clock)
            entry["runs"][name] = run
            last = run["curve"][-1] if run["curve"] else {}
            log(f"D={dim}: {name}: forward {last.get('forward_uvp', math.nan):.3g} %, inverse "
                f"{last.get('inverse_uvp', math.nan):.3g} % after {last.get('seconds', math.nan):.1f} s"
                + (f" [error: {run['error']}]" if run["error"] else ""))
    return result
