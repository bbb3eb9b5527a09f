"""Conv ICNN (B.3): convexity at several image sizes, projection, size-independent gradients."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from w2gn.networks import ConvICNN, build_potential, potential_spec


def _scrambled(seed: int, channels: int = 3) -> ConvICNN:
    """A small Conv ICNN with large random weights (not just the gentle init), then projected."""
    net = ConvICNN(channels=channels, features=4, linear_depth=2, strided_layers=3, dense=(6, 4), seed=seed).double()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    net.project()
    return net


def _second_differences(net: ConvICNN, x: torch.Tensor, d: torch.Tensor, h: float) -> torch.Tensor:
    """psi(x + h d) + psi(x - h d) - 2 psi(x): >= 0 for every convex psi."""
    with torch.no_grad():
        return net(x + h * d) + net(x - h * d) - 2 * net(x)


SIZES = st.sampled_from([(8, 8), (12, 20), (17, 9), (32, 32)])


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), size=SIZES, h=st.sampled_from([0.1, 1.0, 3.0]))
def test_convex_along_random_lines_and_monotone_gradient(seed, size, h):
    net = _scrambled(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((4, 3, *size), generator=g, dtype=torch.float64)
    d = torch.randn((4, 3, *size), generator=g, dtype=torch.float64)
    second = _second_differences(net, x, d, h)
    scale = net(x).abs().max() + 1.0
    assert (second >= -1e-9 * scale).all(), second
    y = x + h * d
    mono = ((net.gradient(y, create_graph=False) - net.gradient(x, create_graph=False)) * (y - x)).flatten(1).sum(1)
    assert (mono >= -1e-9 * scale).all(), mono


def test_convexity_check_detects_a_non_convex_network():
    """The check above can fail: a negative output weight (no projection) makes psi concave somewhere."""
    net = _scrambled(3)
    with torch.no_grad():
        net.convex_dense[-1].weight.fill_(-1.0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn((16, 3, 12, 12), generator=g, dtype=torch.float64)
    d = torch.randn((16, 3, 12, 12), generator=g, dtype=torch.float64)
    assert (_second_differences(net, x, d, 1.0) < 0).any()
    net.project()
    assert all((w >= 0).all() for w in net.constrained_parameters())
    assert (_second_differences(net, x, d, 1.0) >= -1e-9).all()


def test_any_image_size_and_channel_check():
    net = ConvICNN(channels=1, features=4, strided_layers=5, seed=0)
    for size in [(1, 1), (5, 7), (64, 48)]:
        assert net(torch.randn(2, 1, *size)).shape == (2,)
    with pytest.raises(ValueError, match="expects"):
        net(torch.randn(2, 3, 8, 8))


def test_area_scaling_makes_the_map_independent_of_image_size():
    """Tiling a texture 4x4 keeps its statistics: the per-pixel gradient must stay the same size."""
    g = torch.Generator().manual_seed(0)
    tile = torch.randn((1, 3, 16, 16), generator=g, dtype=torch.float64)
    big = tile.repeat(1, 1, 4, 4)
    for scaled, lo, hi in [(True, 0.5, 2.0), (False, 0.0, 0.2)]:
        net = ConvICNN(features=4, strided_layers=3, seed=1, area_scaling=scaled).double()
        rms_small = net.gradient(tile, create_graph=False).square().mean().sqrt()
        rms_big = net.gradient(big, create_graph=False).square().mean().sqrt()
        assert lo < float(rms_big / rms_small) < hi, (scaled, float(rms_big / rms_small))


def test_spec_round_trip_keeps_area_scaling():
    net = ConvICNN(channels=3, features=5, linear_depth=3, strided_layers=2, dense=(7,), area_scaling=False, seed=0)
    again = build_potential(potential_spec(net))
    assert again.config() == net.config() and again.area_scaling is False
    again.load_state_dict(net.state_dict())
    x = torch.randn(2, 3, 10, 10)
    assert torch.allclose(again(x), net(x))


@pytest.mark.parametrize("dense", [(6, 4), ()])
def test_identity_initialisation_is_exact_at_any_size(dense):
    net = ConvICNN(channels=3, features=5, linear_depth=3, strided_layers=4, dense=dense, strong_convexity=0.0).double()
    g = torch.Generator().manual_seed(0)
    for size in [(16, 16), (13, 22), (1, 5)]:
        x = torch.randn((2, 3, *size), generator=g, dtype=torch.float64)
        net.reset_identity(scale=0.0)
        assert torch.allclose(net(x), 0.5 * x.square().flatten(1).sum(1))
        assert torch.allclose(net.gradient(x, create_graph=False), x)
        net.reset_identity(scale=0.05, seed=1)  # near, not at, the identity; still convex
        rel = (net.gradient(x, create_graph=False) - x).square().sum() / x.square().sum()
        assert 0 < float(rel) < 0.05
        assert all((w >= 0).all() for w in net.constrained_parameters())
    with pytest.raises(ValueError, match="features >= channels"):
        ConvICNN(channels=3, features=2).reset_identity()
