"""Named W2GN configurations (w2gn.solvers.presets): one definition for the Python API, the CLI and the benchmarks."""

from __future__ import annotations

import dataclasses

import pytest

from w2gn import W2GNSolver
from w2gn.errors import W2GNUserError
from w2gn.solvers import W2GNConfig, default_lr
from w2gn.solvers.presets import LR_BY_DIMENSION, PRESETS, get_preset, preset, preset_defaults


def test_paper_is_the_config_as_printed():
    # the paper's algorithm in the data's own coordinates (the config's default frame switched off) and with
    # eq. 12's correlations on psi_theta only (the config's default adds the inverse direction's)
    paper = {"precondition": "none", "correlation_on": "theta"}
    assert preset("paper", dim=8) == paper
    assert preset_defaults("paper") == {**dataclasses.asdict(W2GNConfig()), **paper}


def test_fit_preset_is_what_the_fit_command_trains_with():
    """Today's 'w2gn fit' settings, usable from Python."""
    c = W2GNSolver(**preset("fit", dim=8)).config
    assert (c.iterations, c.lr, c.lr_schedule, c.ema_decay, c.gradient_mode, c.refine_inverse_steps) == (
        60000, default_lr(8), "cosine", 0.99, "analytic", 20)
    assert c.precondition == "diagonal"
    assert (c.refine_steps, c.expectile_weight, c.init) == (0, 10.0, "identity")  # expectile from D = 8 up
    assert c.input_lr_factor == 10.0 and W2GNConfig().input_lr_factor == 1.0  # the paper's single rate stays the API's
    assert get_preset("fit").time_budget == 900.0 and get_preset("fit-default") is PRESETS["fit"]
    assert preset("fit", dim=512)["lr"] == default_lr(512)
    assert "lr" not in preset("fit")  # no dimension yet: the config's own lr applies
    assert preset("fit", dim=8, ema_decay=0.5)["ema_decay"] == 0.5  # overrides win


def test_every_preset_builds_a_solver_and_unknown_names_are_user_errors():
    for name in PRESETS:
        W2GNSolver(**preset(name, dim=4))
    with pytest.raises(W2GNUserError, match="unknown preset"):
        preset("magic")
    with pytest.raises(W2GNUserError, match="unknown W2GNConfig option"):
        preset("fit", dim=2, learning_rate=1.0)


def test_preset_defaults_follow_the_config_fields():
    """Every config field appears, so a field added to W2GNConfig (or SolverConfig) reaches the CLI's
    defaults without an edit here; the by-dimension lr stays a marker until D is known."""
    d = preset_defaults("fit")
    assert set(d) == {f.name for f in dataclasses.fields(W2GNConfig)}
    assert d["lr"] == LR_BY_DIMENSION and d["iterations"] == 60000 and d["rank"] == W2GNConfig().rank


def test_fit_cycle_weight_is_half_the_dimension_without_c4s_cap():
    """'w2gn fit' weighs the cycle terms by D / 2 (no cap: under C.4's cap of 50 a D = 512 fit collapsed); the
    paper's preset and the API keep C.4's min(D, 50); an explicit lambda_cycle wins over either rule."""
    for dim, fit, paper in ((2, 1.0, 2.0), (16, 8.0, 16.0), (64, 32.0, 50.0), (100, 50.0, 50.0), (512, 256.0, 50.0)):
        assert W2GNConfig(**preset("fit", dim=dim)).effective_lambda(dim) == fit
        assert W2GNConfig(**preset("paper", dim=dim)).effective_lambda(dim) == paper == W2GNConfig().effective_lambda(dim)
    assert W2GNConfig(**preset("fit", dim=16, lambda_cycle=3.0)).effective_lambda(16) == 3.0
    with pytest.raises(W2GNUserError, match="lambda_per_dim"):
        W2GNSolver(lambda_per_dim=0.0)
    with pytest.raises(W2GNUserError, match="lambda_cap"):
        W2GNSolver(lambda_cap=0.0)
    assert W2GNConfig(lambda_cap=20.0).effective_lambda(64) == 20.0 and W2GNConfig(lambda_cap=None).effective_lambda(64) == 64



def test_fit_expectile_weight_is_chosen_by_dimension_and_an_explicit_value_wins():
    """'w2gn fit' turns the expectile regulariser on from D = 8 (weight 10) and leaves it off below; the
    paper's preset and the API keep it off; an explicit weight wins over the rule."""
    from w2gn.solvers import default_expectile_weight
    from w2gn.solvers.presets import BY_DIMENSION

    assert preset_defaults("fit")["expectile_weight"] == BY_DIMENSION
    for dim, fit in ((2, 0.0), (4, 0.0), (7, 0.0), (8, 10.0), (64, 10.0), (128, 10.0), (256, 0.0), (784, 0.0)):
        assert preset("fit", dim=dim)["expectile_weight"] == fit == default_expectile_weight(dim)
        assert W2GNConfig(**preset("paper", dim=dim)).expectile_weight == 0.0 == W2GNConfig().expectile_weight
    assert "expectile_weight" not in preset("fit")  # D unknown: the config's own default applies
    assert preset("fit", dim=16, expectile_weight=1.0)["expectile_weight"] == 1.0


def test_fit_input_layers_rate_factor_falls_with_the_dimension():
    """10x up to D = 128, lower above (at 10x a D = 256 fit blew up in its first steps); the API keeps 1x."""
    from w2gn.solvers import default_input_lr_factor
    from w2gn.solvers.presets import BY_DIMENSION

    assert preset_defaults("fit")["input_lr_factor"] == BY_DIMENSION and W2GNConfig().input_lr_factor == 1.0
    factors = [preset("fit", dim=d)["input_lr_factor"] for d in (2, 64, 128, 256, 512, 4096)]
    assert factors == [default_input_lr_factor(d) for d in (2, 64, 128, 256, 512, 4096)] == [10, 10, 10, 4, 1, 1]
    # the input layers' step (rate x factor) never grows with D
    steps = [default_lr(d) * default_input_lr_factor(d) for d in (2, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)]
    assert all(a >= b for a, b in zip(steps, steps[1:]))
