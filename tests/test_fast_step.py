"""The fast training step (analytic input-gradients) against the plain autograd step, and sqrtm_psd."""

import numpy as np
import pytest
import scipy.linalg
import torch

from w2gn import GaussianPair, W2GNSolver
from w2gn.errors import W2GNUserError
from w2gn.linalg import sqrtm_psd
from w2gn.networks import ConvexQuadratic
from w2gn.networks.base import ConvexPotential


def _solver(mode: str, dim: int, **kw) -> W2GNSolver:
    pair = GaussianPair.random(dim, seed=3)
    s = W2GNSolver(iterations=1, pretrain_iterations=0, progress=False, dtype="float64", gradient_mode=mode,
                   hidden=[12, 10, 6], **kw)
    gen = torch.Generator().manual_seed(0)
    p, q = pair.source.to("cpu", torch.float64), pair.target.to("cpu", torch.float64)
    s.setup(p, q, gen)
    # leave the identity-like init so that every activation regime is exercised
    with torch.no_grad():
        for net in (s.theta, s.omega):
            for prm in net.parameters():
                prm.add_(0.3 * torch.randn(prm.shape, generator=gen, dtype=prm.dtype))
            net.project()
    return s


@pytest.mark.parametrize("options", [{}, {"cycle_x": True}, {"stop_gradient": False}, {"correlation_on": "omega"},
                                     {"activation": "softplus", "cycle_x": True, "l1_penalty": 1e-3},
                                     {"expectile_weight": 10.0}, {"correlation_on": "both"},
                                     {"expectile_weight": 10.0, "correlation_on": "both"}])
def test_analytic_and_autograd_give_same_loss_and_gradients(options):
    dim = 5
    plain, fast = _solver("autograd", dim, **options), _solver("analytic", dim, **options)
    fast.theta.load_state_dict(plain.theta.state_dict())
    fast.omega.load_state_dict(plain.omega.state_dict())
    gen = torch.Generator().manual_seed(1)
    x = 1.5 * torch.randn(64, dim, generator=gen, dtype=torch.float64)
    y = 1.5 * torch.randn(64, dim, generator=gen, dtype=torch.float64)
    grads = []
    losses = []
    for s in (plain, fast):
        loss, parts = s.loss(x, y)
        for net in (s.theta, s.omega):
            net.zero_grad(set_to_none=True)
        loss.backward()
        losses.append((loss.detach(), parts))
        grads.append([prm.grad.clone() for net in (s.theta, s.omega) for prm in net.parameters()])
    assert float(abs(losses[0][0] - losses[1][0])) <= 1e-10 * float(abs(losses[0][0])), float(losses[0][0] - losses[1][0])
    for k in losses[0][1]:
        assert torch.allclose(losses[0][1][k], losses[1][1][k], rtol=1e-12, atol=1e-12), k
    assert len(grads[0]) == len(grads[1])
    for ga, gb in zip(*grads):
        assert torch.allclose(ga, gb, rtol=1e-10, atol=1e-12)
    # the check can fail: gradients are not all zero
    assert max(float(g.abs().max()) for g in grads[0]) > 1e-3
    # the default options exercise the fused value-and-gradient sweep, not only the fallback
    fwd = fast.omega if fast.config.correlation_on == "omega" else fast.theta
    assert fast._fused(fwd) == (options.get("stop_gradient", True) is True)


def test_value_and_gradient_analytic_matches_forward_and_autograd():
    from w2gn.networks import DenseICNN

    net = DenseICNN(4, [9, 7, 5], rank=2, strong_convexity=0.2, seed=0).double()
    with torch.no_grad():
        for prm in net.parameters():
            prm.add_(0.3 * torch.randn(prm.shape, dtype=prm.dtype, generator=torch.Generator().manual_seed(2)))
        net.project()
    x = 2.0 * torch.randn(33, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    val, grad = net.value_and_gradient_analytic(x)
    assert val.shape == (33,) and grad.shape == (33, 4)
    torch.testing.assert_close(val, net(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, net.gradient(x), rtol=1e-12, atol=1e-12)


def test_analytic_training_matches_autograd_training():
    dim = 4
    pair = GaussianPair.random(dim, seed=2)
    maps = []
    for mode in ("autograd", "analytic"):
        s = W2GNSolver(iterations=15, pretrain_iterations=5, batch_size=64, progress=False, dtype="float64",
                       hidden=[8, 8, 4], gradient_mode=mode, log_every=5)
        maps.append(s.fit(pair.source, pair.target))
    for a, b in zip(maps[0].forward_potential.parameters(), maps[1].forward_potential.parameters()):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-10)


class _QuadOnly(ConvexPotential):
    """A potential without ``gradient_analytic``: the analytic mode must fall back to autograd."""

    def __init__(self, dim):
        super().__init__()
        self.event_shape = (dim,)
        self.q = ConvexQuadratic(dim, 1, rank=dim)

    def forward(self, x):
        return self.q(x).squeeze(-1)

    def project(self):
        pass

    def config(self):
        return {}


def test_analytic_mode_falls_back_for_other_potentials():
    pair = GaussianPair.random(3, seed=0)
    s = W2GNSolver(iterations=5, pretrain_iterations=0, batch_size=32, progress=False, gradient_mode="analytic")
    fitted = s.fit(pair.source, pair.target, potential=_QuadOnly(3))
    assert np.isfinite(s.history[-1]["loss"])
    assert fitted.forward(np.zeros((2, 3))).shape == (2, 3)


def test_bad_speed_options_are_user_errors():
    with pytest.raises(W2GNUserError, match="gradient_mode"):
        W2GNSolver(gradient_mode="fast")
    with pytest.raises(W2GNUserError, match="CUDA only"):
        W2GNSolver(autocast_bf16=True, device="cpu")
    with pytest.raises(W2GNUserError, match="compile needs"):
        W2GNSolver(compile=True)


@pytest.mark.slow  # inductor compiles for minutes on a loaded 2-core CPU
def test_compiled_loss_trains_like_eager():
    pair = GaussianPair.random(3, seed=0)
    maps = []
    for comp in (False, True):
        s = W2GNSolver(iterations=6, pretrain_iterations=3, batch_size=32, progress=False, hidden=[8, 8, 4],
                       gradient_mode="analytic", compile=comp, log_every=3)
        maps.append(s.fit(pair.source, pair.target))
    for a, b in zip(maps[0].forward_potential.parameters(), maps[1].forward_potential.parameters()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dim", [1, 7, 64])
def test_sqrtm_psd_matches_scipy(dim):
    gen = torch.Generator().manual_seed(dim)
    a = torch.randn(dim, 2 * dim, generator=gen, dtype=torch.float64)
    cov = a @ a.T / (2 * dim) + 0.1 * torch.eye(dim, dtype=torch.float64)
    root = sqrtm_psd(cov)
    ref = scipy.linalg.sqrtm(cov.numpy())
    assert root.dtype == torch.float64
    np.testing.assert_allclose(root.numpy(), np.real(ref), rtol=1e-9, atol=1e-10)
    assert torch.allclose(root @ root, cov, atol=1e-10)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_sqrtm_psd_float32_input_is_computed_in_float64_and_handles_singular():
    v = torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=torch.float32)  # rank 1
    root = sqrtm_psd(v)
    assert root.dtype == torch.float64
    np.testing.assert_allclose(root.numpy(), np.real(scipy.linalg.sqrtm(v.double().numpy())), atol=1e-7)


def test_cli_speed_options(tmp_path, capsys):
    from w2gn.cli import main

    assert main(["gaussian", "--dim", "2", "--bf16", "--out-dir", str(tmp_path)]) == 2
    assert "CUDA only" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["gaussian", "--dim", "2", "--device", "cuda", "--out-dir", str(tmp_path)]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err
    assert main(["gaussian", "--dim", "3", "--iterations", "20", "--pretrain-iterations", "10", "--batch-size", "64",
                 "--gradient-mode", "analytic", "--eval-samples", "500", "--quiet", "--out-dir", str(tmp_path)]) == 0
    import json

    rep = json.loads((tmp_path / "gaussian_D3.json").read_text())
    assert rep["config"]["gradient_mode"] == "analytic" and rep["config"]["autocast_bf16"] is False


def _step_cost_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "step_cost.py"
    spec = importlib.util.spec_from_file_location("step_cost", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_step_cost_flop_count_is_exact_and_the_fast_step_does_less_work():
    # the benchmark's FLOP column backs the claim that <= 4x is out of reach; check its counter
    count = _step_cost_module()._count_flops
    lin = torch.nn.Linear(7, 5)
    x = torch.randn(11, 7)
    assert count(lambda: lin(x)) == 2 * 11 * 7 * 5
    y = x.clone().requires_grad_(True)
    assert count(lambda: lin(y).sum().backward()) == 3 * 2 * 11 * 7 * 5  # forward, dW and dX
    plain, fast = _solver("autograd", 6), _solver("analytic", 6)
    pair = GaussianPair.random(6, seed=3)
    p, q = pair.source.to("cpu", torch.float64), pair.target.to("cpu", torch.float64)
    gen = torch.Generator().manual_seed(2)
    assert count(lambda: fast.step(0, p, q, gen)) < count(lambda: plain.step(0, p, q, gen))


@pytest.mark.parametrize("options", [{}, {"expectile_weight": 10.0, "l1_penalty": 1e-3}])
def test_swapped_halves_of_two_processes_sum_to_the_whole_objective(options):
    """Each of the 2 processes computes one half with the other half's value term (the sweep it takes anyway):
    the two halves' losses, parts and gradients add up to the one-process objective's."""
    dim = 5
    s = _solver("analytic", dim, correlation_on="both", **options)
    gen = torch.Generator().manual_seed(4)
    x = 1.5 * torch.randn(64, dim, generator=gen, dtype=torch.float64)
    y = 1.5 * torch.randn(64, dim, generator=gen, dtype=torch.float64) + 0.5
    params = [prm for net in (s.theta, s.omega) for prm in net.parameters()]

    def run(fn):
        loss, parts = fn()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return loss.detach(), parts, [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]

    whole = run(lambda: s.loss(x, y))
    halves = [run(lambda inv=inv: s.direction_loss(x, y, None, inverse=inv, swap_value_terms=True))
              for inv in (False, True)]
    plain = [run(lambda inv=inv: s.direction_loss(x, y, None, inverse=inv)) for inv in (False, True)]
    torch.testing.assert_close(halves[0][0] + halves[1][0], whole[0], rtol=1e-12, atol=1e-12)
    for k in whole[1]:
        torch.testing.assert_close(halves[0][1][k] + halves[1][1][k], whole[1][k], rtol=1e-12, atol=1e-12)
    for ga, gb, gw in zip(halves[0][2], halves[1][2], whole[2]):
        torch.testing.assert_close(ga + gb, gw, rtol=1e-10, atol=1e-12)
    # the check can fail: each swapped half differs from the plain half by the value terms
    assert abs(float(halves[0][0] - plain[0][0])) > 1e-3
    assert abs(float(halves[0][1]["w2_dual"] - plain[0][1]["w2_dual"])) > 1e-3
