"""Convexity and gradient properties of the ICNN potentials (paper, Appendix B)."""

import pytest
import torch
from helpers import random_dense_icnn
from hypothesis import given, settings
from hypothesis import strategies as st

from w2gn.networks import ConvexQuadratic, ConvICNN, DenseICNN, build_potential, potential_spec


def jensen_gap(psi, x, y, t):
    """t psi(x) + (1-t) psi(y) - psi(t x + (1-t) y): >= 0 for a convex psi."""
    shape = (-1,) + (1,) * (x.dim() - 1)
    tt = t.view(shape)
    return t * psi(x) + (1 - t) * psi(y) - psi(tt * x + (1 - tt) * y)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    dim=st.integers(1, 12),
    scale=st.sampled_from([1e-2, 1.0, 10.0, 300.0]),
    weight_scale=st.sampled_from([0.1, 1.0, 3.0]),
    rank=st.integers(1, 4),
    activation=st.sampled_from(["celu", "softplus", "relu"]),
)
def test_dense_icnn_jensen_gap_nonnegative(seed, dim, scale, weight_scale, rank, activation):
    net = random_dense_icnn(dim, seed, rank=rank, activation=activation, weight_scale=weight_scale)
    g = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(256, dim, generator=g, dtype=torch.float64)
    y = scale * torch.randn(256, dim, generator=g, dtype=torch.float64)
    t = torch.rand(256, generator=g, dtype=torch.float64)
    with torch.no_grad():
        gap = jensen_gap(net, x, y, t)
        size = net(x).abs() + net(y).abs() + 1.0
    assert bool((gap >= -1e-9 * size).all()), float(gap.min())


def test_jensen_detects_nonconvex_network():
    """The property test can fail: negative hidden weights break convexity and it sees it."""
    net = random_dense_icnn(3, 0, weight_scale=1.0)
    with torch.no_grad():
        for layer in net.convex_layers:
            layer.weight.neg_()
        net.final_layer.weight.neg_()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2000, 3, generator=g, dtype=torch.float64), torch.randn(2000, 3, generator=g, dtype=torch.float64)
    gap = jensen_gap(net, x, y, torch.full((2000,), 0.5, dtype=torch.float64))
    assert float(gap.min()) < -1e-6


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dim", [1, 3, 6])
@pytest.mark.parametrize("activation", ["celu", "softplus"])
def test_dense_icnn_hessian_psd(seed, dim, activation):
    net = random_dense_icnn(dim, seed, activation=activation, weight_scale=2.0, strong_convexity=0.0)
    g = torch.Generator().manual_seed(100 + seed)
    for scale in (0.1, 1.0, 20.0):
        x0 = scale * torch.randn(dim, generator=g, dtype=torch.float64)
        h = torch.autograd.functional.hessian(lambda v: net(v.unsqueeze(0)).sum(), x0)
        assert torch.allclose(h, h.T, atol=1e-8)
        eig = torch.linalg.eigvalsh(h)
        assert float(eig.min()) >= -1e-8 * max(1.0, float(eig.abs().max()))


def test_strong_convexity_lower_bounds_hessian():
    beta = 0.7
    net = random_dense_icnn(4, 3, strong_convexity=beta)
    x0 = torch.randn(4, dtype=torch.float64)
    h = torch.autograd.functional.hessian(lambda v: net(v.unsqueeze(0)).sum(), x0)
    assert float(torch.linalg.eigvalsh(h).min()) >= beta - 1e-9


@pytest.mark.parametrize("activation", ["celu", "softplus", "relu"])
def test_gradient_matches_finite_differences(activation):
    net = random_dense_icnn(5, 7, activation=activation, strong_convexity=0.1)
    x = torch.randn(16, 5, dtype=torch.float64)
    grad = net.gradient(x, create_graph=False)
    eps = 1e-6
    fd = torch.zeros_like(x)
    with torch.no_grad():
        for i in range(5):
            e = torch.zeros(5, dtype=torch.float64)
            e[i] = eps
            fd[:, i] = (net(x + e) - net(x - e)) / (2 * eps)
    assert torch.allclose(grad, fd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_analytic_gradient_equals_autograd(seed):
    net = random_dense_icnn(7, seed, hidden=(12, 9, 6, 4), rank=3, strong_convexity=0.05)
    x = 3 * torch.randn(64, 7, dtype=torch.float64)
    assert torch.allclose(net.gradient_analytic(x), net.gradient(x, create_graph=False), rtol=1e-10, atol=1e-10)
    # and its parameter gradients agree with double backward
    w = torch.randn(64, 7, dtype=torch.float64)
    ga = torch.autograd.grad((net.gradient_analytic(x) * w).sum(), list(net.parameters()))
    gb = torch.autograd.grad((net.gradient(x, create_graph=True) * w).sum(), list(net.parameters()))
    for a, b in zip(ga, gb):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 5000), n=st.integers(2, 12), dim=st.integers(1, 6))
def test_map_is_cyclically_monotone(seed, n, dim):
    """sum_k <grad psi(x_k), x_k - x_{k+1}> >= 0 on every cycle (Rockafellar), as for any gradient of a convex psi."""
    net = random_dense_icnn(dim, seed, weight_scale=1.5)
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(n, dim, generator=g, dtype=torch.float64)
    grad = net.gradient(x, create_graph=False)
    total = (grad * (x - torch.roll(x, -1, dims=0))).sum()
    assert float(total) >= -1e-9 * (1 + float(grad.abs().sum()))


def test_convex_quadratic_is_psd_quadratic_plus_affine():
    layer = ConvexQuadratic(4, 3, rank=2).double()
    x = torch.randn(10, 4, dtype=torch.float64)
    f = layer.quadratic_decomposed.view(4, 2, 3)
    for n in range(3):
        a = f[:, :, n] @ f[:, :, n].T  # (in, in) PSD, rank <= 2
        expect = ((x @ a) * x).sum(1) + x @ layer.weight[n] + layer.bias[n]
        assert torch.allclose(layer(x)[:, n], expect)
        assert float(torch.linalg.eigvalsh(a).min()) >= -1e-12
        assert int(torch.linalg.matrix_rank(a)) <= 2


def test_initialisation_is_deterministic_and_complete():
    a, b = DenseICNN(5, [8, 8], seed=3), DenseICNN(5, [8, 8], seed=3)
    c = DenseICNN(5, [8, 8], seed=4)
    for (na, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.isfinite(pa).all(), na
        assert torch.equal(pa, pb), na
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))
    for w in a.constrained_parameters():
        assert float(w.min()) >= 0


def test_projection_after_optimiser_step_keeps_weights_nonnegative():
    net = DenseICNN(3, [8, 8, 4], seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=10.0)
    loss = sum(w.sum() for w in net.constrained_parameters())  # pushes them negative
    loss.backward()
    opt.step()
    assert any(float(w.min()) < 0 for w in net.constrained_parameters())
    net.project()
    assert all(float(w.min()) >= 0 for w in net.constrained_parameters())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_inference_map_matches_full_gradient(dtype):
    net = DenseICNN(4, [16, 8], seed=1).to(dtype)
    x = torch.randn(1000, 4, dtype=dtype)
    full = net.gradient(x, create_graph=False)
    batched = net.map(x, batch_size=97)
    assert batched.dtype == dtype and batched.shape == x.shape and not batched.requires_grad
    assert torch.allclose(full, batched, rtol=1e-5 if dtype == torch.float32 else 1e-12)


def test_potential_spec_roundtrip():
    net = DenseICNN(3, [8, 4], rank=2, activation="softplus", strong_convexity=0.01)
    again = build_potential(potential_spec(net))
    assert again.config() == net.config()
    conv = ConvICNN(channels=2, features=8, strided_layers=2, dense=[8])
    assert build_potential(potential_spec(conv)).config() == conv.config()


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("size", [(8, 8), (12, 16), (32, 32)])
def test_conv_icnn_jensen_gap(seed, size):
    net = ConvICNN(channels=3, features=8, linear_depth=2, strided_layers=3, dense=[16, 8], seed=seed).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    net.project()
    for scale in (0.1, 1.0, 5.0):
        x = scale * torch.randn(6, 3, *size, generator=g, dtype=torch.float64)
        y = scale * torch.randn(6, 3, *size, generator=g, dtype=torch.float64)
        t = torch.rand(6, generator=g, dtype=torch.float64)
        with torch.no_grad():
            gap = jensen_gap(net, x, y, t)
            size_ = net(x).abs() + net(y).abs() + 1
        assert bool((gap >= -1e-9 * size_).all())


def test_conv_icnn_gradient_matches_finite_differences():
    net = ConvICNN(channels=2, features=4, strided_layers=2, dense=[4], strong_convexity=0.1, seed=0).double()
    x = torch.randn(2, 2, 6, 5, dtype=torch.float64)
    grad = net.gradient(x, create_graph=False)
    assert grad.shape == x.shape
    eps = 1e-6
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        d = torch.randn(x.shape, generator=g, dtype=torch.float64)
        with torch.no_grad():
            fd = (net(x + eps * d) - net(x - eps * d)) / (2 * eps)
        assert torch.allclose((grad * d).flatten(1).sum(1), fd, rtol=1e-5, atol=1e-7)


def test_conv_icnn_rejects_wrong_channels():
    with pytest.raises(ValueError, match="expects"):
        ConvICNN(channels=3, features=4)(torch.randn(1, 1, 8, 8))
