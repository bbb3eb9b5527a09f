"""W2GN solver (Algorithm 1 + C.1): accuracy on Gaussians, options, determinism, divergence."""

import numpy as np
import pytest
import torch

from w2gn import DivergenceError, GaussianPair, W2GNSolver, W2GNUserError, get_solver
from w2gn.metrics import l2_uvp

FAST = dict(progress=False, batch_size=256, log_every=50)


def uvp(fitted, pair, n=4000):
    g = torch.Generator().manual_seed(99)
    x, y = pair.source.sample(n, g), pair.target.sample(n, g)
    fwd = l2_uvp(torch.as_tensor(fitted.forward(x)), pair.forward_map(x), pair.target.variance)
    inv = l2_uvp(torch.as_tensor(fitted.inverse(y)), pair.inverse_map(y), pair.source.variance)
    ident = l2_uvp(x, pair.forward_map(x), pair.target.variance)
    return fwd, inv, ident


@pytest.mark.parametrize("dim", [2, 4])
def test_short_fit_brings_l2_uvp_far_below_identity(dim):
    pair = GaussianPair.random(dim, seed=0)
    fitted = W2GNSolver(iterations=500, pretrain_iterations=300, **FAST).fit(pair.source, pair.target)
    fwd, inv, ident = uvp(fitted, pair)
    assert ident > 10
    assert fwd < 2.0 and fwd < ident / 10, (fwd, ident)
    assert inv < 3.0, inv
    g = torch.Generator().manual_seed(5)
    w2 = fitted.w2_squared(pair.source.sample(20000, g), pair.target.sample(20000, g))
    assert w2 == pytest.approx(pair.w2_squared, rel=0.1)


def test_same_seed_same_weights_different_seed_different_weights():
    x = np.random.randn(500, 2)
    y = 0.5 * np.random.randn(500, 2) + 1
    opts = dict(iterations=30, pretrain_iterations=20, **FAST)
    a = W2GNSolver(seed=1, **opts).fit(x, y)
    b = W2GNSolver(seed=1, **opts).fit(x, y)
    c = W2GNSolver(seed=2, **opts).fit(x, y)
    sa, sb, sc = a.state(), b.state(), c.state()
    for k, v in sa["forward"]["state_dict"].items():
        assert torch.equal(v, sb["forward"]["state_dict"][k])
    assert any(not torch.equal(v, sc["forward"]["state_dict"][k]) for k, v in sa["forward"]["state_dict"].items())


@pytest.mark.parametrize(
    "opts",
    [
        dict(stop_gradient=False, lambda_cycle=50.0),  # the full eq. 12 needs a stronger cycle term
        dict(cycle_x=True),
        dict(cycle_normalization="sample", lambda_cycle=2.0),
        dict(correlation_on="omega", cycle_x=True, cycle_y=False),
        dict(l1_penalty=1e-6, dtype="float64", rank=2, hidden=[16, 16]),
        dict(input_lr_factor=10.0, lr_schedule="cosine"),
    ],
)
def test_options_train_and_keep_weights_projected(opts):
    pair = GaussianPair.random(2, seed=0)
    solver = W2GNSolver(iterations=300, pretrain_iterations=200, **FAST, **opts)
    fitted = solver.fit(pair.source, pair.target)
    for pot in (fitted.forward_potential, fitted.inverse_potential):
        assert all(float(w.detach().min()) >= 0 for w in pot.constrained_parameters())
    fwd, inv, ident = uvp(fitted, pair)
    assert fwd < ident / 3 and inv < ident / 3, (opts, fwd, inv, ident)
    assert len(solver.history) == 6 and {"loss", "cycle_y", "w2_dual"} <= set(solver.history[-1])


def test_input_lr_factor_gives_the_input_layers_their_own_rate():
    """The convex-quadratic layers (the only ones that read x) form a second Adam group at lr * factor; the
    rest stay at lr; factor 1 keeps one group (older checkpoints' optimiser states still load)."""
    solver = W2GNSolver(iterations=3, pretrain_iterations=0, lr=2e-3, input_lr_factor=30.0, **FAST)
    solver.fit(np.random.randn(64, 3), np.random.randn(64, 3))
    for opt, net in ((solver.opt_theta, solver.theta), (solver.opt_omega, solver.omega)):
        rest, inputs = opt.param_groups
        assert rest["lr"] == pytest.approx(2e-3) and inputs["lr"] == pytest.approx(6e-2)
        assert {id(p) for p in inputs["params"]} == {id(p) for p in net.input_parameters()}
        assert {id(p) for p in rest["params"]} | {id(p) for p in inputs["params"]} == {id(p) for p in net.parameters()}
        assert not {id(p) for p in net.constrained_parameters()} & {id(p) for p in inputs["params"]}
    plain = W2GNSolver(iterations=3, pretrain_iterations=0, **FAST)
    plain.fit(np.random.randn(64, 3), np.random.randn(64, 3))
    assert len(plain.opt_theta.param_groups) == 1


def test_linear_input_lr_factor_gives_the_linear_input_weights_a_third_rate():
    """``linear_input_lr_factor`` splits the convex-quadratic layers' linear weights W off into a third group;
    equal to ``input_lr_factor`` (or None) it changes nothing (two groups, as before); the groups partition
    the parameters."""
    solver = W2GNSolver(iterations=1, pretrain_iterations=0, lr=1e-3, input_lr_factor=10.0,
                        linear_input_lr_factor=100.0, **FAST)
    solver.fit(np.random.randn(64, 3), np.random.randn(64, 3))
    for opt, net in ((solver.opt_theta, solver.theta), (solver.opt_omega, solver.omega)):
        rest, other, linear = opt.param_groups
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3, 1e-2, 1e-1])
        assert {id(p) for p in linear["params"]} == {id(p) for p in net.linear_input_parameters()}
        groups = [{id(p) for p in g["params"]} for g in opt.param_groups]
        assert sum(map(len, groups)) == len(set().union(*groups)) == len(list(net.parameters()))
        assert set().union(*groups[1:]) == {id(p) for p in net.input_parameters()}
    for k in (None, 10.0):
        same = W2GNSolver(iterations=1, pretrain_iterations=0, lr=1e-3, input_lr_factor=10.0,
                          linear_input_lr_factor=k, **FAST)
        same.fit(np.random.randn(64, 3), np.random.randn(64, 3))
        assert [g["lr"] for g in same.opt_theta.param_groups] == pytest.approx([1e-3, 1e-2])
    with pytest.raises(W2GNUserError, match="linear_input_lr_factor"):
        W2GNSolver(linear_input_lr_factor=0.0)


def test_stop_gradient_leaves_omega_to_the_cycle_term():
    """With the C.1 heuristic, omega's gradient comes only from the cycle term: with lambda=0 it is zero."""
    solver = W2GNSolver(iterations=1, pretrain_iterations=0, lambda_cycle=0.0, correlation_on="theta", **FAST)
    x = torch.randn(64, 3)
    solver.setup(*[s.to("cpu", torch.float32) for s in (
        __import__("w2gn").distributions.as_sampler(x), __import__("w2gn").distributions.as_sampler(x + 1))],
        torch.Generator().manual_seed(0))
    loss, _ = solver.loss(x, x + 1)
    loss.backward()
    assert all(p.grad is None or float(p.grad.abs().max()) == 0 for p in solver.omega.parameters())
    assert any(p.grad is not None and float(p.grad.abs().max()) > 0 for p in solver.theta.parameters())


def test_callback_receives_live_map_and_can_stop():
    seen = []

    def cb(it, live, row):
        seen.append((it, row["loss"]))
        assert live.forward(np.zeros((1, 2))).shape == (1, 2)
        return it >= 100

    solver = W2GNSolver(iterations=1000, pretrain_iterations=10, **FAST)
    solver.fit(np.random.randn(100, 2), np.random.randn(100, 2), callback=cb)
    assert [s[0] for s in seen] == [50, 100]
    assert solver.iteration == 100


def test_nan_in_data_stream_stops_with_divergence_error():
    calls = {"n": 0}

    def sampler(n):
        calls["n"] += 1
        out = np.random.randn(n, 2)
        if calls["n"] > 40:
            out[0, 0] = np.nan
        return out

    solver = W2GNSolver(iterations=200, pretrain_iterations=0, **FAST)
    with pytest.raises(DivergenceError) as err:
        solver.fit(sampler, np.random.randn(100, 2))
    assert err.value.quantity == "loss" and err.value.iteration < 40
    assert solver.last_good_state is not None
    for sd in solver.last_good_state["modules"].values():
        assert all(torch.isfinite(v).all() for v in sd.values())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(iterations=0), "iterations"),
        (dict(batch_size=-1), "batch_size"),
        (dict(lr=0.0), "lr"),
        (dict(cycle_normalization="bogus"), "cycle_normalization"),
        (dict(cycle_x=False, cycle_y=False), "cycle"),
        (dict(nonsense=1), "unknown option"),
        (dict(dtype="float16"), "dtype"),
        (dict(input_lr_factor=0.0), "input_lr_factor"),
    ],
)
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(W2GNUserError, match=match):
        solver = W2GNSolver(progress=False, **kwargs)
        solver.fit(np.random.randn(10, 2), np.random.randn(10, 2))


@pytest.mark.parametrize(
    "x, y, match",
    [
        (np.random.randn(10, 2), np.random.randn(10, 3), "different sample shapes"),
        (np.random.randn(10, 2), np.zeros((0, 2)), "empty"),
        (np.random.randn(10), np.random.randn(10, 1), "2-D"),
        (np.array([[1.0, np.inf]]), np.random.randn(10, 2), "NaN or inf"),
        (np.array([["a", "b"]]), np.random.randn(10, 2), "numbers"),
    ],
)
def test_bad_data_is_refused_before_training(x, y, match):
    with pytest.raises(W2GNUserError, match=match):
        get_solver("w2gn", progress=False).fit(x, y)


def test_unknown_method_and_cuda_without_gpu():
    with pytest.raises(W2GNUserError, match="unknown method"):
        get_solver("nope")
    if not torch.cuda.is_available():
        with pytest.raises(W2GNUserError, match="CUDA"):
            get_solver("w2gn", device="cuda", progress=False).fit(np.zeros((4, 2)), np.zeros((4, 2)))


def test_image_shaped_samples_use_conv_icnn():
    x = torch.rand(16, 3, 8, 8)
    fitted = W2GNSolver(iterations=2, pretrain_iterations=2, batch_size=4, progress=False, log_every=1).fit(x, x)
    assert type(fitted.forward_potential).__name__ == "ConvICNN"
    assert fitted.forward(x[:2]).shape == (2, 3, 8, 8)
