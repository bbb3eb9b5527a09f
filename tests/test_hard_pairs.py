"""The hard benchmark pairs (issue 18): published difficulty, exact maps, inverse, reproducible generation."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from w2gn.errors import W2GNUserError
from w2gn.metrics import bures_map, l2_uvp
from w2gn.networks import DenseICNN
from w2gn.testbeds import get_pair, grid_mixture, hard_dims, level_mixture, load_pair
from w2gn.testbeds.hard import BAND, PUBLISHED_BASELINES, NormalizedSumPotential, hard_pair

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "make_hard_pairs.py"
SHIPPED = hard_dims()


def _script():
    spec = importlib.util.spec_from_file_location("make_hard_pairs", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_shipped_dimensions_are_published_ones():
    # D = 64 has not been built yet (benchmarks/results/hard_pairs.md)
    assert SHIPPED and set(SHIPPED) <= set(PUBLISHED_BASELINES)


@pytest.mark.parametrize("dim", SHIPPED)
def test_identity_and_linear_scores_within_published_band(dim):
    # recomputed from a fresh sample (not the generation script's check sample, not pair.baselines):
    # T = id and the Bures map between Gaussian fits of P and Q, scored against the true map
    pair = hard_pair(dim)
    x = pair.source.sample(4000, torch.Generator().manual_seed(77)).double()
    y = pair.forward_map(x)
    var = float((y - y.mean(0)).square().sum(1).mean())
    mx, my = x.mean(0), y.mean(0)
    a, b = bures_map(mx, (x - mx).T @ (x - mx) / len(x), my, (y - my).T @ (y - my) / len(y))
    identity, linear = l2_uvp(x, y, var), l2_uvp(x @ a.T + b, y, var)
    pub_id, pub_lin = PUBLISHED_BASELINES[dim]
    assert abs(identity / pub_id - 1) <= BAND, (identity, pub_id)
    assert abs(linear / pub_lin - 1) <= BAND, (linear, pub_lin)


@pytest.mark.parametrize("dim", SHIPPED)
def test_target_is_centred_with_unit_variance_on_average(dim):
    pair = hard_pair(dim)
    y = pair.forward_map(pair.source.sample(20_000, torch.Generator().manual_seed(5)).double())
    assert float(y.mean(0).norm()) < 0.1 * math.sqrt(dim)
    assert abs(float(y.var(0).mean()) - 1) < 0.05


@pytest.mark.parametrize("dim", SHIPPED)
def test_true_map_matches_finite_differences(dim):
    pair = hard_pair(dim)
    x = pair.source.sample(8, torch.Generator().manual_seed(1)).double()
    g = pair.forward_map(x)
    h = 1e-5
    eye = torch.eye(dim, dtype=torch.float64)
    fd = torch.stack([(pair.potential(x + h * e) - pair.potential(x - h * e)) / (2 * h) for e in eye], dim=1)
    assert torch.allclose(g, fd, atol=1e-6, rtol=1e-6)
    # the explicit gradient (no autograd) is the same map
    assert torch.allclose(pair.potential.gradient_analytic(x), g, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("dim", SHIPPED)
def test_inverse_after_forward_is_identity(dim):
    pair = hard_pair(dim)
    x = pair.source.sample(64, torch.Generator().manual_seed(2)).double()
    y = pair.forward_map(x)
    back = pair.inverse_map(y, tol=1e-9)  # raises if the conjugate solve misses the tolerance
    assert torch.allclose(back, x, atol=1e-6)
    assert torch.allclose(pair.forward_map(back), y, atol=1e-8)


def test_map_is_a_gradient_of_a_convex_function():
    # Hessian symmetric positive definite at P's samples: T is the OT map (Brenier), and the
    # scalar normalisation kept it so
    pair = hard_pair(max(SHIPPED))
    x = pair.source.sample(6, torch.Generator().manual_seed(3)).double()
    for xi in x:
        hess = torch.autograd.functional.jacobian(lambda t: pair.potential.gradient_analytic(t[None])[0], xi)
        assert torch.allclose(hess, hess.T, atol=1e-10)
        assert float(torch.linalg.eigvalsh(hess).min()) > 0


def test_family_lookup():
    assert load_pair(4, family="hard").name == "hard-d4"
    assert get_pair("hard:4").name == get_pair("hard-d4").name == "hard-d4"
    assert load_pair(4).name == "fitted-d4"  # the easy family stays the default
    with pytest.raises(W2GNUserError):
        load_pair(3, family="hard")
    with pytest.raises(W2GNUserError):
        load_pair(4, family="medium")


def test_grid_mixture_has_unit_variance_per_coordinate_on_average():
    src = grid_mixture(16, 3, torch.Generator().manual_seed(0))
    assert abs(src.total_variance() - 16) < 1e-9
    x = src.to("cpu", torch.float64).sample(50_000, torch.Generator().manual_seed(1))
    assert abs(float((x - x.mean(0)).square().sum(1).mean()) / 16 - 1) < 0.03
    # component standard deviation 0.4 on average per coordinate
    assert torch.allclose(src.factors64.square().sum(dim=(1, 2)) / 16, torch.full((3,), 0.16, dtype=torch.float64))


def test_level_mixture_lays_centres_on_distinct_levels_with_unit_variance():
    # the published sampler's layout: per coordinate, the K centres are a permutation of K evenly spaced
    # levels; every row of a component's factor has the same norm (std before scaling 0.4); total variance D
    k, d = 10, 8
    mix = level_mixture(d, k, torch.Generator().manual_seed(3))
    assert abs(mix.total_variance() - d) < 1e-9
    c = mix.means64
    step = None
    for j in range(d):
        levels = torch.sort(c[:, j]).values
        gaps = levels[1:] - levels[:-1]
        step = float(gaps[0]) if step is None else step
        assert torch.allclose(gaps, torch.full_like(gaps, step), atol=1e-12)  # K distinct, evenly spaced
        assert abs(float(levels.mean())) < 1e-12
    rows = mix.factors64.norm(dim=2)
    assert torch.allclose(rows, torch.full_like(rows, 0.4 * step), atol=1e-12)  # std 0.4 in units of the spacing
    x = mix.to("cpu", torch.float64).sample(50_000, torch.Generator().manual_seed(1))
    assert abs(float((x - x.mean(0)).square().sum(1).mean()) / d - 1) < 0.03


def test_regression_construction_is_deterministic_and_moves_towards_the_mixture():
    mod = _script()

    def short():
        return mod.make(8, check_every=100, max_steps=100, pretrain=20, check_samples=2000, log=lambda *a, **k: None,
                        objective="regression", ot_samples=512, layout="levels", draw=1, lr=3e-3,
                        input_lr_factor=10.0)

    (a, sa), (b, _) = _deterministic(short), _deterministic(short)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["info"]["objective"] == "regression" and a["info"]["layout"] == "levels"
    # 100 steps of regression onto the discrete OT matching already bend the map well away from linear
    assert sa["checks"][-1]["linear"] > 5.0, sa["checks"]


def test_normalized_sum_round_trips_through_its_spec():
    from w2gn.networks import build_potential, potential_spec

    parts = [DenseICNN(3, [8, 8], seed=s) for s in (0, 1)]
    pot = NormalizedSumPotential.from_parts(parts).double()
    pot.normalize(torch.randn(500, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    other = build_potential(potential_spec(pot)).double()
    other.load_state_dict(pot.state_dict())
    x = torch.randn(5, 3, dtype=torch.float64)
    assert torch.equal(other(x), pot(x))
    want = (parts[0].double().gradient(x, False) + parts[1].double().gradient(x, False) - pot.shift) / pot.scale
    assert torch.allclose(pot.gradient(x, create_graph=False), want, atol=1e-12)


def test_regression_step_decay_divides_every_rate_by_ten_at_each_drop():
    # RECIPES[32] relies on it: the rate (and the input layers' 10x rate) divided by 10 after each listed step
    mod = _script()
    src, tgt = level_mixture(4, 3, torch.Generator().manual_seed(0)), level_mixture(4, 10, torch.Generator().manual_seed(1))
    net = mod.DenseICNN(4, [16, 16], rank=1, seed=0)
    trainer = mod.RegressionTrainer(net, src, tgt, 64, 1e-2, 10.0, pretrain=2, seed=0, batch_size=32, lr_drops=[3, 5])
    base = [g["lr"] for g in trainer.opt.param_groups]
    assert max(base) == pytest.approx(10 * min(base))
    for steps, factor in ((2, 1.0), (2, 0.1), (2, 0.01)):  # the rate used by the last of these steps
        trainer.advance(steps)
        assert [g["lr"] for g in trainer.opt.param_groups] == pytest.approx([b * factor for b in base])
    assert trainer.iteration == 6
    plain = mod.RegressionTrainer(mod.DenseICNN(4, [16, 16], rank=1, seed=0), src, tgt, 64, 1e-2, 10.0, pretrain=2,
                                  seed=0, batch_size=32)
    plain.advance(6)
    assert [g["lr"] for g in plain.opt.param_groups] == base  # no drops: the rates are never touched


def _deterministic(fn):
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)


def test_generation_is_deterministic_on_a_short_run():
    mod = _script()

    def short():
        return mod.make(2, check_every=20, max_steps=20, pretrain=20, check_samples=2000, log=lambda *a, **k: None)

    a, _ = _deterministic(short)
    b, _ = _deterministic(short)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


@pytest.mark.slow
@pytest.mark.parametrize("dim", [32])
def test_generation_script_reproduces_shipped_weights_bit_for_bit(dim):
    # Bit for bit holds on the kind of machine (CPU, library builds) that made the file: the matrix kernels' rounding
    # differs between CPUs. D = 32 (~540 CPU s, 18,000 steps with the rate's step decay) was made on this project's
    # current VM. D = 2, 4, 8 and 16 were made on earlier sessions' VMs; rebuilt here, D = 8 gives other floats and
    # identity / linear 59.9 / 27.6 % against the shipped 59.7 / 27.7, and D = 16 other floats that meet the stopping
    # rule at 2500 steps instead of 3750 (every shipped file is checked to be in the band above).
    mod = _script()
    shipped = torch.load(ROOT / "src" / "w2gn" / "testbeds" / "data" / f"hard_d{dim}.pt", weights_only=True)
    info = shipped["info"]
    settings = mod.recipe(dim, _no_flags(mod))  # what `make_hard_pairs.py --dims D` runs with
    assert {k: info[k] for k in settings} == settings  # and what the shipped file records
    state, summary = _deterministic(lambda: mod.make(dim, check_every=info["check_every"], max_steps=info["max_steps"],
                                                     log=lambda *a, **k: None,
                                                     **{"ot_samples": info["ot_samples"], **settings}))
    assert summary["steps"] == info["steps_per_potential"]
    assert state["state_dict"].keys() == shipped["state_dict"].keys()
    for k, v in shipped["state_dict"].items():
        assert torch.equal(state["state_dict"][k], v), k
    for k in ("source_means", "source_factors", "source_weights"):
        assert torch.equal(state[k], shipped[k]), k


def _no_flags(mod):
    """The script's parsed command line with no construction flag given (so ``recipe`` gives RECIPES[D])."""
    import argparse

    return argparse.Namespace(**{k: None for k in (*mod.PUBLISHED, *mod.EXTRAS)})
