"""One owner of the learning rate: the loop's schedule, composed with restarts, time budgets and checkpoints.

Each test names the bug it catches; the first two fail on the code before the schedule object existed
(``W2GNSolver.step`` rewrote ``lr = config.lr * cosine(t)`` every step, dropping the restart factor, and
``TimeBudget`` rewrote ``config.iterations``).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from w2gn import W2GNSolver
from w2gn.solvers import LSOTSolver, MM1Solver, TimeBudget
from w2gn.solvers.schedule import LRSchedule

TINY = dict(batch_size=32, hidden=[8, 8], pretrain_iterations=5, log_every=5, progress=False)


def _data(n=200, d=2):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, d)), 1.5 * rng.normal(size=(n, d)) + 1.0


def _cosine(t: int, horizon: int, final: float = 0.01) -> float:
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(1.0, t / horizon)))


class NaNOnce(W2GNSolver):
    """W2GN whose loss turns NaN once at iteration ``at`` (a divergence the guard must catch)."""

    def __init__(self, at: int, **kw):
        super().__init__(**kw)
        self.at, self.fired = at, False

    def step(self, iteration, p, q, generator):
        out = super().step(iteration, p, q, generator)
        if iteration == self.at and not self.fired:
            self.fired = True
            out["loss"] = out["loss"] * float("nan")
        return out


def test_restart_under_cosine_schedule_lowers_the_learning_rate():
    """Fails before the schedule object: the cosine step overwrote the restart's lower rate with
    ``lr * cosine(t)``, so ``--max-restarts`` retried at the very rate that diverged."""
    x, y = _data()
    s = NaNOnce(at=12, iterations=30, lr=1e-3, lr_schedule="cosine", max_restarts=1, restart_lr_factor=0.25, **TINY)
    fitted = s.fit(x, y)
    assert s.iteration == 30 and len(fitted.info["restarts"]) == 1
    # the last step (29) ran at a quarter of the cosine's rate there
    lrs = [g["lr"] for o in s.optimizers().values() for g in o.param_groups]
    assert lrs == [pytest.approx(1e-3 * 0.25 * _cosine(29, 30))] * 2
    restart = fitted.info["restarts"][0]
    assert restart["lr"] == pytest.approx(1e-3 * 0.25 * _cosine(restart["restarted_from"], 30))


def test_fit_leaves_the_configuration_unchanged_under_a_time_budget_and_a_resume(tmp_path):
    """Fails before: ``TimeBudget`` rewrote ``config.iterations`` to its re-aimed horizon (and a resumed
    ``fit`` swapped ``self.config`` to skip pretraining)."""
    x, y = _data()
    s = W2GNSolver(iterations=10**6, lr_schedule="cosine", **TINY)
    before = copy.deepcopy(s.config)
    s.fit(x, y, callback=TimeBudget(s, 0.5))
    assert s.config == before and s.iteration < 10**6
    opts = dict(iterations=20, checkpoint_dir=str(tmp_path), checkpoint_every=10, **TINY)
    W2GNSolver(**opts).fit(x, y)
    again = W2GNSolver(**{**opts, "iterations": 30, "resume": True})
    before = copy.deepcopy(again.config)
    again.fit(x, y)
    assert again.config == before and again.iteration == 30 and again.resumed_from is not None


def test_a_restart_after_a_restart_lowers_the_rate_again():
    """Two restarts from the same last good state: the second must not retry the first's rate
    (the scale is ``factor ** restarts``, not ``factor`` times the snapshot's rate)."""
    x, y = _data()

    class Twice(W2GNSolver):
        fired = 0

        def step(self, iteration, p, q, generator):
            out = super().step(iteration, p, q, generator)
            if iteration == 12 and self.fired < 2:
                self.fired += 1
                out["loss"] = out["loss"] * float("nan")
            return out

    s = Twice(iterations=20, lr=1e-3, max_restarts=2, restart_lr_factor=0.5, **TINY)
    fitted = s.fit(x, y)
    assert [r["lr"] for r in fitted.info["restarts"]] == [pytest.approx(5e-4), pytest.approx(2.5e-4)]


def test_checkpoint_keeps_the_restart_scale_and_resume_continues_the_schedule(tmp_path):
    x, y = _data()
    opts = dict(lr=1e-3, lr_schedule="cosine", max_restarts=1, restart_lr_factor=0.25, checkpoint_dir=str(tmp_path),
                checkpoint_every=10, **TINY)
    first = NaNOnce(at=12, iterations=20, **opts)
    first.fit(x, y)
    assert first.state_dict()["schedule"]["scale"] == 0.25
    resumed = W2GNSolver(**{**opts, "iterations": 40, "resume": True})
    resumed.fit(x, y)
    assert resumed.iteration == 40 and resumed.schedule.scale == 0.25
    # the resumed run's horizon is its own iteration count: the cosine ends at 40
    assert resumed.opt_theta.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.25 * _cosine(39, 40))


def test_time_budget_plan_with_synthetic_times():
    s = W2GNSolver(iterations=5000, **TINY)
    budget = TimeBudget(s, 10.0)
    assert budget.plan(100, 1.0) == 1000  # 100 steps/s for 9 more seconds
    assert budget.plan(100, 0.01) == 5000  # fast: capped by max_iterations
    assert budget.plan(100, 20.0) == 101  # over budget: at least the next step
    # no fit: the horizon lives in a schedule built by hand
    s.schedule = LRSchedule("cosine", 0.01, 5000)
    assert budget.aim(100, 1.0) is False and s.horizon == 1000 and s.horizon_reason == "time budget"
    assert budget.aim(100, 0.01) is False and s.horizon == 5000 and s.horizon_reason == "iterations"
    assert budget.aim(1000, 10.0) is True
    assert s.config.iterations == 5000


def test_time_budget_stop_is_reported_in_one_line_and_in_the_map(capsys):
    """Issue 21: a budgeted run says what stopped it and after how many steps; the map records it."""
    x, y = _data()
    s = W2GNSolver(iterations=10**6, **{**TINY, "progress": True})
    fitted = s.fit(x, y, callback=TimeBudget(s, 0.5))
    err = capsys.readouterr().err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if "stopped by" in ln]
    assert lines == [f"w2gn: stopped by the time budget after {s.iteration} steps, at iteration {s.iteration} "
                     f"({fitted.info['stop']['seconds']:.1f} s of training)"]
    assert fitted.info["stop"]["reason"] == "time budget" and fitted.info["stop"]["iterations"] == s.iteration
    assert fitted.info["config"]["iterations"] == 10**6
    done = W2GNSolver(iterations=7, **TINY).fit(x, y)
    assert done.info["stop"] == {"reason": "iterations", "iterations": 7, "seconds": done.info["stop"]["seconds"]}
    stopped = W2GNSolver(iterations=50, **TINY).fit(x, y, callback=lambda it, m, row: it >= 10)
    assert stopped.info["stop"]["reason"] == "callback" and stopped.info["stop"]["iterations"] == 10


def test_progress_bar_total_follows_the_budget(monkeypatch):
    """The bar's total (hence its ETA) is the budget's planned horizon, not the iteration cap."""
    import w2gn.solvers.loop as loop

    totals = []
    real = loop.tqdm

    class Spy(real):
        def refresh(self, *a, **k):
            totals.append(self.total)
            return super().refresh(*a, **k)

    monkeypatch.setattr(loop, "tqdm", Spy)
    x, y = _data()
    s = W2GNSolver(iterations=10**6, **TINY)
    s.fit(x, y, callback=TimeBudget(s, 0.5))
    assert totals and totals[-1] == s.horizon < 10**6


def test_baselines_get_the_loops_schedule_and_weight_averages():
    """EMA and the schedule are loop features: the baselines can be compared like for like."""
    x, y = _data()
    mm1 = MM1Solver(iterations=10, ema_decay=0.9, lr_schedule="cosine", batch_size=32, hidden=[8, 8],
                    pretrain_iterations=5, progress=False, inner_iterations=5)
    fitted = mm1.fit(x, y)
    assert fitted.forward_potential is mm1.averages.averages["theta"]
    assert not torch.equal(next(mm1.theta.parameters()), next(fitted.forward_potential.parameters()))
    assert mm1.opt_theta.param_groups[0]["lr"] == pytest.approx(1e-3 * _cosine(9, 10))
    lsot = LSOTSolver(iterations=10, map_lr=1e-2, lr_schedule="cosine", batch_size=32, hidden=[8, 8],
                      pretrain_iterations=5, progress=False)
    lsot.fit(x, y)
    # every optimiser keeps its own base rate under the common schedule
    assert lsot.opt_f.param_groups[0]["lr"] == pytest.approx(1e-2 * _cosine(9, 10))
    assert lsot.opt_theta.param_groups[0]["lr"] == pytest.approx(1e-3 * _cosine(9, 10))


def test_state_dict_round_trip_continues_like_the_original():
    x, y = _data()
    a = W2GNSolver(iterations=10, lr_schedule="cosine", ema_decay=0.5, **TINY)
    a.fit(x, y)
    state = a.state_dict()
    b = W2GNSolver(iterations=10, lr_schedule="cosine", ema_decay=0.5, **TINY)
    b.fit(x, y)  # any trained solver of the same shape; then overwritten
    torch.manual_seed(123)
    next(b.theta.parameters()).data.add_(1.0)
    b.load_state_dict(state)
    for name, m in a.state_modules().items():
        for (k, v), w in zip(m.state_dict().items(), b.state_modules()[name].state_dict().values()):
            assert torch.equal(v, w), (name, k)
    assert b.iteration == a.iteration and b.schedule.state_dict() == a.schedule.state_dict()


def test_warmup_ramps_every_group_linearly_then_hands_over_to_the_shape():
    """The warm-up multiplies the shape by ``(t + 1) / warmup`` for ``t < warmup``: the first step runs at
    ``1 / warmup`` of the rate (Adam's first steps move each weight by about the full rate), then the shape
    alone (cosine or constant) takes over; the input layers' second Adam group is ramped alike."""
    s = LRSchedule("cosine", 0.01, horizon=1000, warmup=100)
    assert s.shape(0) == pytest.approx(0.01 * _cosine(0, 1000))
    assert s.shape(49) == pytest.approx(0.5 * _cosine(49, 1000))
    assert s.shape(99) == pytest.approx(_cosine(99, 1000)) and s.shape(500) == pytest.approx(_cosine(500, 1000))
    assert LRSchedule("constant", warmup=4).shape(1) == pytest.approx(0.5)
    assert LRSchedule("constant").shape(0) == 1.0
    x, y = _data()
    solver = W2GNSolver(iterations=10, lr=1e-3, lr_warmup=20, input_lr_factor=10.0, **TINY)
    solver.fit(x, y)
    rates = sorted(g["lr"] for o in solver.optimizers().values() for g in o.param_groups)
    assert rates == pytest.approx([1e-3 * 10 / 20] * 2 + [1e-2 * 10 / 20] * 2)  # the last step was t = 9


def test_negative_warmup_is_refused():
    with pytest.raises(Exception, match="lr_warmup"):
        W2GNSolver(lr_warmup=-1, **TINY)
