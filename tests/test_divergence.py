"""Divergence: NaN/inf losses, gradients and weights and exploding losses stop the run at once, keep the
last good checkpoint, and can restart from it with a lower learning rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from w2gn import TransportMap, W2GNSolver
from w2gn import checkpoint as ckpt
from w2gn.cli import main
from w2gn.errors import DivergenceError, W2GNUserError

TINY = dict(batch_size=32, hidden=[8, 8], pretrain_iterations=5, log_every=5, progress=False)



def _data(n=200, d=2):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, d)), 1.5 * rng.normal(size=(n, d)) + 1.0


class Faulty(W2GNSolver):
    """W2GN with a fault injected at iteration ``at`` (the first ``times`` times it gets there)."""

    def __init__(self, fault: str, at: int, times: int = 10**9, **kw):
        super().__init__(**kw)
        self.fault, self.at, self.times = fault, at, times

    def step(self, iteration, p, q, generator):
        out = super().step(iteration, p, q, generator)
        if iteration == self.at and self.times > 0:
            self.times -= 1
            w = next(self.theta.parameters())
            if self.fault == "loss":
                out["loss"] = out["loss"] * float("nan")
            elif self.fault == "explode":
                out["loss"] = out["loss"].abs() * 1e9 + 1e9
            elif self.fault == "gradient":
                w.grad[...] = float("inf")
            elif self.fault == "weights":
                with torch.no_grad():
                    w[...] = float("nan")
        return out


@pytest.mark.parametrize("fault, at, quantity", [
    ("loss", 12, "loss = nan"),
    ("explode", 12, r"loss = .*exceeds 10000 x its running"),
    ("gradient", 12, "gradient of theta = nan"),
    # weights are inspected at log/checkpoint steps (a NaN weight poisons the next loss anyway)
    ("weights", 14, "weights of theta = nan"),
])
def test_fault_stops_at_once_and_keeps_last_good_checkpoint(tmp_path, fault, at, quantity):
    x, y = _data()
    s = Faulty(fault, at=at, iterations=40, checkpoint_dir=str(tmp_path), checkpoint_every=5, **TINY)
    with pytest.raises(DivergenceError, match=f"at iteration {at}: {quantity}") as info:
        s.fit(x, y)
    exc = info.value
    assert exc.checkpoint.endswith("ckpt-000000010.ckpt") and "last good checkpoint" in str(exc)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)][-1] == "ckpt-000000010.ckpt"
    state = ckpt.load(exc.checkpoint)
    assert state["iteration"] == 10
    assert all(bool(torch.isfinite(v).all()) for sd in state["modules"].values() for v in sd.values())
    assert exc.last_good_iteration == 10


def test_large_learning_rate_diverges_with_checkpoint_intact(tmp_path):
    x, y = _data()
    # the one-sided objective (the paper's) blows up at lr 10; the two-sided default does not reach inf there
    s = W2GNSolver(iterations=300, lr=10.0, checkpoint_dir=str(tmp_path), checkpoint_every=5, correlation_on="theta", **TINY)
    with pytest.raises(DivergenceError) as info:
        s.fit(x, y)
    path = info.value.checkpoint
    assert path is not None and ckpt.load(path)["iteration"] <= info.value.iteration
    good = s.last_good_state
    assert all(bool(torch.isfinite(v).all()) for sd in good["modules"].values() for v in sd.values())


def test_restart_with_lower_learning_rate(tmp_path):
    x, y = _data()
    s = Faulty("loss", at=12, times=1, iterations=30, lr=1e-3, max_restarts=2, restart_lr_factor=0.25, **TINY)
    fitted = s.fit(x, y)
    assert s.iteration == 30
    assert fitted.info["restarts"] == [{"diverged_at": 12, "quantity": "loss", "restarted_from": 10, "lr": 2.5e-4}]
    assert {g["lr"] for o in s.optimizers().values() for g in o.param_groups} == {2.5e-4}
    always = Faulty("loss", at=12, iterations=30, max_restarts=2, **TINY)
    with pytest.raises(DivergenceError, match="iteration 12"):
        always.fit(x, y)
    assert always.restarts == 2


def test_map_with_non_finite_weights_is_never_saved(tmp_path):
    x, y = _data()
    fitted = W2GNSolver(iterations=5, **TINY).fit(x, y)
    with torch.no_grad():
        next(fitted.forward_potential.parameters())[0] = float("nan")
    with pytest.raises(W2GNUserError, match="non-finite"):
        fitted.save(tmp_path / "m.pt")
    assert not list(tmp_path.iterdir())


def test_cli_divergence_exit_3_then_resume_with_lower_lr(tmp_path, capsys):
    x, y = _data()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "map.pt"
    args = ["fit", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "-o", str(out), "--iterations", "300",
            "--batch-size", "32", "--hidden", "8,8", "--pretrain-iterations", "5", "--log-every", "5", "--quiet",
            "--checkpoint-every", "5", "--correlation-on", "theta",  # the objective that blows up at lr 10
            "--max-restarts", "0"]  # fit's preset would restart twice first (at lr 5, 2.5), then stop the same way
    assert main([*args, "--lr", "10"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "training diverged at iteration" in err
    assert f"last good checkpoint: {tmp_path / 'map.pt.ckpt'}" in err and "w2gn resume" in err
    assert not out.exists()
    diverged_at = int(err.split("diverged at iteration ")[1].split(":")[0])
    kept = ckpt.list_checkpoints(tmp_path / "map.pt.ckpt")
    assert kept and int(kept[-1].stem.split("-")[1]) < diverged_at  # the failing weights are set aside
    assert list((tmp_path / "map.pt.ckpt").glob("*.ckpt.diverged")) or diverged_at % 5
    assert main(["resume", str(tmp_path / "map.pt.ckpt"), "--lr", "1e-4", "--iterations", "60"]) == 0
    fitted = TransportMap.load(out)
    assert fitted.info["iterations"] == 60


class Collapsing(W2GNSolver):
    """W2GN whose potentials die in step ``at``: every unit past the first layer pushed deep into CELU's flat
    tail, so both maps become (almost) constant while the loss stays moderate and every weight finite."""

    def __init__(self, at: int, **kw):
        super().__init__(**kw)
        self.at, self.killed = at, False

    def step(self, iteration, p, q, generator):
        out = super().step(iteration, p, q, generator)
        if iteration == self.at and not self.killed:
            self.killed = True
            with torch.no_grad():
                for net in (self.theta, self.omega):
                    for layer in net.quadratic_layers[1:]:
                        layer.bias.fill_(-1e4)
        return out


def test_collapsed_potentials_stop_the_run_and_keep_the_state_before_the_collapse(tmp_path):
    from w2gn.solvers.loop import COLLAPSE_PATIENCE

    x, y = _data()
    s = Collapsing(at=100, iterations=100 + COLLAPSE_PATIENCE + 100, checkpoint_dir=str(tmp_path), checkpoint_every=5,
                   **TINY)
    with pytest.raises(DivergenceError, match="cycle error .*the potentials have collapsed") as info:
        s.fit(x, y)
    exc = info.value
    # reported where the dead weights' loss first showed (the step after the kill), after the patience
    assert exc.iteration == 101 and f"to {101 + COLLAPSE_PATIENCE}" in str(exc)
    assert exc.value > s.config.collapse_limit and exc.last_good_iteration == 100
    # the checkpoints written after the collapse (dead weights, finite loss) are set aside
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)][-1] == "ckpt-000000100.ckpt"
    good = ckpt.load(exc.checkpoint)["modules"]["theta"]
    assert all(float(v.max()) > -1e3 for k, v in good.items() if k.endswith("bias"))


def test_collapse_restart_goes_back_before_the_collapse():
    x, y = _data()
    s = Collapsing(at=60, iterations=400, max_restarts=1, **TINY)
    s.fit(x, y)  # the kill happens once: the restart from iteration 60 trains on
    assert len(s.restart_log) == 1 and s.restart_log[0]["quantity"] == "cycle error"
    assert s.restart_log[0]["restarted_from"] == 60 and s.iteration == 400
    assert s.history[-1]["cycle_y_rel"] < s.config.collapse_limit


class Spiking(W2GNSolver):
    """W2GN reporting a relative cycle error of 5 for ``length`` steps from ``at`` (a transient)."""

    def __init__(self, at: int, length: int, **kw):
        super().__init__(**kw)
        self.at, self.length = at, length

    def step(self, iteration, p, q, generator):
        out = super().step(iteration, p, q, generator)
        if self.at <= iteration < self.at + self.length:
            out["cycle_y_rel"] = torch.tensor(5.0)
        return out


def test_a_spike_shorter_than_the_patience_does_not_stop_the_run():
    from w2gn.solvers.loop import COLLAPSE_PATIENCE

    x, y = _data()
    s = Spiking(at=20, length=COLLAPSE_PATIENCE // 2, iterations=20 + COLLAPSE_PATIENCE, **TINY)
    s.fit(x, y)
    assert s.stop_reason == "iterations" and not s.restart_log
    # the same spike past the patience stops it; collapse_limit=0 turns the check off
    with pytest.raises(DivergenceError, match="cycle error"):
        Spiking(at=100, length=10**6, iterations=150 + COLLAPSE_PATIENCE, **TINY).fit(x, y)
    Spiking(at=100, length=10**6, iterations=150 + COLLAPSE_PATIENCE, collapse_limit=0, **TINY).fit(x, y)
    # a run that has never been below half the limit is not stopped (it starts far from a cycle)
    Spiking(at=0, length=10**6, iterations=150 + COLLAPSE_PATIENCE, **TINY).fit(x, y)


def test_cli_fit_restarts_a_diverged_run_twice_by_default(tmp_path, capsys):
    """``w2gn fit``'s preset rewinds a diverged run to its last good state at half the rates, at most twice, and
    says so; a run that keeps diverging still ends with exit status 3. Other commands keep 0 restarts."""
    from w2gn.cli import build_parser

    x, y = _data()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    args = ["fit", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "-o", str(tmp_path / "map.pt"),
            "--iterations", "300", "--batch-size", "32", "--hidden", "8,8", "--pretrain-iterations", "5",
            "--log-every", "5", "--quiet", "--no-checkpoints", "--correlation-on", "theta", "--lr", "10"]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "restart 1/2" in err and "restart 2/2" in err and "training diverged at iteration" in err
    parser = build_parser()
    assert parser.parse_args(["fit", "x.npy", "y.npy", "-o", "m.pt"]).max_restarts == 2
    assert parser.parse_args(["gaussian"]).max_restarts == 0
