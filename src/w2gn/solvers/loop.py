"""The training loop every solver shares: :class:`TrainingLoop`.

Per step it sets the learning rates from the solver's :class:`~w2gn.solvers.schedule.LRSchedule`,
calls :meth:`Solver.step`, moves the weight averages, and checks that the loss and gradients are
finite and that the loss has not exploded (every step on CPU; every ``log_every`` steps on GPU,
where a check stalls the queue). Every ``log_every`` steps it records statistics, offers a
last-good snapshot and calls the callback; it writes checkpoints when due. On divergence it restarts
from the last good state with the restart scale lowered (``max_restarts`` times) or raises
:class:`~w2gn.errors.DivergenceError` naming the last good checkpoint. At the end it records (and,
with a progress bar, prints as one line) what stopped the run and after how many steps.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from ..errors import DivergenceError

if TYPE_CHECKING:  # pragma: no cover
    from ..checkpoint import CheckpointWriter
    from ..distributions import Sampler
    from .base import Callback, Solver

#: steps a relative cycle error may stay past ``collapse_limit`` before the run counts as collapsed
COLLAPSE_PATIENCE = 200

#: how each stop reason is said in the closing line
STOP_WORDS = {"iterations": "the iteration count", "time budget": "the time budget", "callback": "the callback",
              "divergence": "divergence", "interrupted": "an interrupt"}


def check_finite(value: torch.Tensor | float, iteration: int, quantity: str) -> float:
    """Return ``float(value)`` or raise :class:`DivergenceError` if it is NaN/inf."""
    v = float(value)
    if not math.isfinite(v):
        raise DivergenceError(iteration, quantity, v)
    return v


def grads_finite(params) -> bool:
    """True if every existing gradient of ``params`` is finite (one device sync)."""
    gs = [p.grad for p in params if p.grad is not None]
    if not gs:
        return True
    # one fused reduction over the list instead of a check per tensor, a cost every process of a multi-process
    # fit pays on every step. The 2-norm is finite whenever every gradient is, unless their squares overflow
    # (float32 values past ~1e19): only then is each tensor checked, so the answer is exact either way
    if bool(torch.isfinite(torch.nn.utils.get_total_norm(gs))):
        return True
    return bool(torch.stack([torch.isfinite(g).all() for g in gs]).all())


class TrainingLoop:
    """One call of :meth:`Solver.run`: trains ``solver`` from its :attr:`~Solver.iteration` to its
    :attr:`~Solver.horizon`. The counters that outlive a run (iteration, history, restarts, the
    divergence reference) live on the solver, in its state; this object holds only the run's own."""

    def __init__(self, solver: Solver, p: Sampler, q: Sampler, gen: torch.Generator,
                 callback: Callback | None, writer: CheckpointWriter | None) -> None:
        self.solver, self.p, self.q, self.gen = solver, p, q, gen
        self.callback, self.writer = callback, writer
        # A state saved at iteration j holds the weights whose loss is computed at step j: it becomes
        # "good" only once that loss has passed the checks; until then it is pending.
        self.pending: dict[str, Any] | None = None
        self.start_iteration = solver.iteration
        # the first iteration of the current run of steps whose cycle error is past the collapse limit
        self.collapse_since: int | None = None
        # (the modules checked, their parameter lists): built by the first check of each run of steps
        self._params: tuple[dict[str, torch.nn.Module], dict[str, list[torch.nn.Parameter]]] | None = None

    def run(self) -> None:
        s, writer = self.solver, self.writer
        s.stop_reason = None
        if s.last_good_state is None:
            s.last_good_state = s.snapshot()
        while True:
            try:
                reason = self._loop()
                if self.pending is not None and self.collapse_since is None:
                    s.last_good_state, self.pending = self.pending, None
                self._finish(reason)
                return
            except KeyboardInterrupt as exc:
                # Ctrl-C / SIGTERM may land inside an optimiser step: save the last good state instead
                good = s.last_good_state
                exc.checkpoint = None  # type: ignore[attr-defined]
                if writer is not None and good is not None and "optimizers" in good:
                    if writer.last_iteration is None or good["iteration"] > writer.last_iteration:
                        writer.write(good)
                    exc.checkpoint = str(writer.last_path) if writer.last_path is not None else None  # type: ignore[attr-defined]
                self._finish("interrupted")
                raise
            except DivergenceError as exc:
                if not self._restart(exc):
                    self._finish("divergence")
                    raise

    def _restart(self, exc: DivergenceError) -> bool:
        """After ``exc``: rewind to the last good state with a lower restart scale; False when out of restarts."""
        s, writer, c = self.solver, self.writer, self.solver.config
        self.pending, self.collapse_since = None, None
        good = s.last_good_state
        exc.last_good_iteration = good["iteration"] if good is not None else None
        if writer is not None:
            # checkpoints from the failing step on hold the weights that failed: set them aside
            writer.discard_from(exc.iteration)
        exc.checkpoint = str(writer.last_path) if writer is not None and writer.last_path is not None else None
        if s.restarts >= c.max_restarts or good is None or "optimizers" not in good:
            return False
        log, horizon, reason = list(s.restart_log), s.horizon, s.horizon_reason
        s.load_state_dict(good, "last good state")  # rewinds the loop counters to the snapshot's
        s.set_horizon(horizon, reason)  # the end of the run is not rewound
        s.restart_log = log
        s.restarts = len(log) + 1
        s.schedule.restart(c.restart_lr_factor, s.restarts)
        lrs = s.schedule.lrs(s.optimizers(), s.iteration)
        s.restart_log.append({"diverged_at": exc.iteration, "quantity": exc.quantity,
                              "restarted_from": s.iteration, "lr": min(lrs) if lrs else float("nan")})
        tqdm.write(f"{s.name}: {exc}; restart {s.restarts}/{c.max_restarts} from iteration "
                   f"{s.iteration} with learning rate x{c.restart_lr_factor ** s.restarts:g}", file=sys.stderr)
        return True

    def _finish(self, reason: str) -> None:
        """Record what stopped the run; with a progress bar, say it in one line."""
        s = self.solver
        s.stop_reason = reason
        if s.config.progress:
            seconds = s.history[-1]["seconds"] if s.history else 0.0
            steps = s.iteration - self.start_iteration
            since = f" (from iteration {self.start_iteration})" if self.start_iteration else ""
            tqdm.write(f"{s.name}: stopped by {STOP_WORDS.get(reason, reason)} after {steps} steps{since}, "
                       f"at iteration {s.iteration} ({seconds:.1f} s of training)", file=sys.stderr)

    def _loop(self) -> str:
        """Steps until the horizon or a stop; returns the stop reason."""
        s, c, writer, p, q = self.solver, self.solver.config, self.writer, self.p, self.q
        mods = s.state_modules()
        opts = s.optimizers()
        device = next(iter(mods.values())).parameters().__next__().device
        # on CPU a per-step check is free; on GPU it would stall the queue, so check when logging
        sync_every = 1 if device.type == "cpu" else c.log_every
        start = time.perf_counter() - s._seconds_before
        bar = tqdm(total=s.horizon, initial=s.iteration, disable=not c.progress, desc=s.name, leave=False)
        for m in mods.values():
            m.train()
        wrote_any = writer is not None and writer.every > 0
        try:
            if wrote_any and s.iteration == 0 and writer.last_iteration != 0:
                self._write_checkpoint()  # a last good state on disk before the first step
            while s.iteration < s.horizon:
                it = s.iteration
                s.schedule.apply(opts, it)
                out = s.step(it, p, q, self.gen)
                if s.averages is not None:
                    s.averages.update(it)
                s.iteration = it + 1
                bar.update(1)
                checked = s.iteration % sync_every == 0
                if checked:
                    self._check_step(out, mods, it)
                stop = None
                if s.iteration % c.log_every == 0 or s.iteration == s.horizon:
                    if not checked:
                        self._check_step(out, mods, it)
                    checked = True
                    self._check_weights(mods, it)
                    stats = {k: check_finite(v.detach(), it, k) for k, v in out.items()}
                    for m in mods.values():
                        m.eval()
                    stats.update(s.extra_stats(p, q))
                    self.pending = s.snapshot()
                    row = {"iteration": float(s.iteration), "seconds": time.perf_counter() - start, **stats}
                    s.history.append(row)
                    bar.set_postfix(loss=f"{stats['loss']:.4g}")
                    if self.callback is not None:
                        answer = self.callback(s.iteration, s.framed_map(), row)
                        stop = (answer if isinstance(answer, str) else "callback") if answer else None
                    if bar.total != s.horizon:  # a time budget re-aimed the run: the bar's total and ETA follow
                        bar.total = s.horizon
                        bar.refresh()
                    for m in mods.values():
                        m.train()
                # no checkpoint during a streak of collapse-level cycle errors: rotating the good ones out
                # for states that may be dead would leave nothing to go back to
                if writer is not None and self.collapse_since is None and (
                        writer.due(s.iteration) or (s.iteration == s.horizon and wrote_any) or (stop and wrote_any)):
                    if not checked:
                        self._check_step(out, mods, it)
                    self._check_weights(mods, it)
                    self._write_checkpoint()
                    wrote_any = True
                if stop:
                    return stop
            return s.horizon_reason
        finally:
            bar.close()
            for m in mods.values():
                m.eval()

    def _check_step(self, out: dict[str, torch.Tensor], mods: dict[str, torch.nn.Module], it: int) -> None:
        """Stop on a NaN/inf loss, a NaN/inf gradient, a loss past ``explode_factor`` x its running mean or a
        collapsed pair of potentials (:meth:`_check_collapse`)."""
        s = self.solver
        loss = check_finite(out["loss"].detach(), it, "loss")
        if self._params is None or self._params[0] is not mods:
            # the parameter lists, once per run: walking the module tree costs ~0.3 ms, on every step
            self._params = (mods, {name: list(m.parameters()) for name, m in mods.items()})
        for name, params in self._params[1].items():
            if not grads_finite(params):
                raise DivergenceError(it, f"gradient of {name}", float("nan"), "a parameter gradient is NaN/inf")
        factor = s.config.explode_factor
        if factor:
            ref = s._loss_ema
            if ref is not None and abs(loss) > factor * max(ref, 1.0):
                raise DivergenceError(it, "loss", loss, f"|loss| exceeds {factor:g} x its running average {ref:.4g}")
            # an exponential moving average of |loss| over roughly the last 100 checks
            s._loss_ema = abs(loss) if ref is None else 0.99 * ref + 0.01 * abs(loss)
        self._check_collapse(out, it)
        if self.pending is not None and it >= self.pending["iteration"] and self.collapse_since is None:
            s.last_good_state, self.pending = self.pending, None

    def _check_collapse(self, out: dict[str, torch.Tensor], it: int) -> None:
        """Stop once a relative cycle error (``*_rel``: over the constant map's) has stayed above
        ``collapse_limit`` for :data:`COLLAPSE_PATIENCE` steps.

        A pair of potentials can die (every unit in CELU's flat tail: a constant map, zero gradients) with
        a loss of the size it had and finite weights: the loss check cannot see it, the cycle error can.
        The check arms once the error has been below half the limit, so a run that starts far from a
        cycle (no pretraining) is not stopped for where it starts; the patience lets a run through the
        brief spikes fast input layers make in their first steps (hard D = 8 pair and the toys, input layers
        at 100x: 7-11 steps above the limit, then healthy). While the error is above the limit no state
        becomes the last good one, so a restart goes back to before the streak began. A run that ends
        inside a streak shorter than the patience returns its last weights."""
        s, limit = self.solver, self.solver.config.collapse_limit
        rel = [out[k] for k in ("cycle_y_rel", "cycle_x_rel") if k in out]
        if not limit or not rel:
            return
        worst = float(torch.stack([r.detach().float() for r in rel]).max())
        if not s._collapse_armed:
            s._collapse_armed = worst < 0.5 * limit
            return
        if worst <= limit:
            self.collapse_since = None
            return
        if self.collapse_since is None:
            self.collapse_since = it
        if it - self.collapse_since >= COLLAPSE_PATIENCE:
            # reported at the streak's first iteration: states and checkpoints from there on hold the collapse
            since = self.collapse_since
            raise DivergenceError(since, "cycle error", worst,
                                  f"over {limit:g} x that of the constant map from iteration {since} to {it}: "
                                  "the potentials have collapsed")

    @staticmethod
    def _check_weights(mods: dict[str, torch.nn.Module], it: int) -> None:
        for name, m in mods.items():
            if not all(bool(torch.isfinite(v).all()) for v in m.parameters()):
                raise DivergenceError(it, f"weights of {name}", float("nan"), "a parameter became NaN/inf")

    def _write_checkpoint(self) -> None:
        self.writer.write(self.solver.state_dict(copy_tensors=False))
