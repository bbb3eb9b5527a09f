"""The peer benchmark's adapters (issue 22) on a tiny pair, and its time-to-reach arithmetic on synthetic curves.

Each adapter runs a few steps (a budget of seconds) and must hand back finite forward and inverse L2-UVP on the
fixed evaluation set. The OTT-JAX adapters skip, saying why, where the optional ``peers`` extra is not installed.
"""

from __future__ import annotations

import math

import pytest

from w2gn.testbeds import load_pair
from w2gn.testbeds.peer_report import markdown_report, peer_rows, plain, time_to_reach
from w2gn.testbeds.peers import OTTMethod, POTMethod, Session, W2GNMethod, eval_times, run_method, run_peers

OTT_REASON = "optional peer OTT-JAX not installed (pip install 'w2gn[peers]')"


@pytest.fixture(scope="module")
def pair():
    return load_pair(2, family="fitted")


def _check(run: dict, name: str) -> None:
    assert run["error"] is None, run["error"]
    assert run["method"] == name and run["curve"], run
    end = run["curve"][-1]
    assert math.isfinite(end["forward_uvp"]) and math.isfinite(end["inverse_uvp"]), end
    seconds = [r["seconds"] for r in run["curve"]]
    assert all(s >= 0 for s in seconds)


@pytest.mark.parametrize("preset_name", ["fit", "paper"])
def test_w2gn_adapter(pair, preset_name):
    run = run_method(W2GNMethod(preset_name), pair, budget_s=1.0, n_eval=512)
    _check(run, f"w2gn-{preset_name}")
    assert run["curve"][-1]["steps"] > 0 and run["curve"][-1].get("final")
    # the budget ends the run (evaluations excluded): past 1 s only by w2gn's setup (frame estimation) and one log period
    assert run["curve"][-1]["seconds"] < 10.0


@pytest.mark.parametrize("kind", ["emd", "sinkhorn"])
def test_pot_adapter(pair, kind):
    run = run_method(POTMethod(kind, n0=100, n_max=400), pair, budget_s=5.0, n_eval=512)
    _check(run, f"pot-{kind}")
    ns = [r["n"] for r in run["curve"]]
    assert ns[0] == 100 and ns == sorted(ns) and ns[-1] <= 400
    assert run["curve"][-1].get("final")


@pytest.mark.parametrize("kind", ["w2-amortized", "expectile", "w2"])
def test_ott_adapter(pair, kind):
    pytest.importorskip("ott.neural.methods.neuraldual", reason=OTT_REASON)
    pytest.importorskip("flax", reason=OTT_REASON)
    # a budget shorter than one step: compile, one step, one evaluation; small batches keep it to seconds
    run = run_method(OTTMethod(kind, batch_size=64), pair, budget_s=0.01, n_eval=256)
    assert run["error"] is None, run["error"]
    assert run["curve"] and run["curve"][-1]["steps"] >= 1
    end = run["curve"][-1]
    # one step from the initialisation: a number (possibly a bad one), not a crash
    assert not math.isnan(end["forward_uvp"]) and not math.isnan(end["inverse_uvp"]), end


def test_missing_peer_is_listed_not_run(pair, monkeypatch):
    monkeypatch.setattr(OTTMethod, "unavailable", lambda self: "ott-jax is not installed (test)")
    result = run_peers([2], ["ott-expectile", "pot-emd"], budget_s=0.2, n_eval=256)
    assert result["not_run"] == {"ott-expectile": "ott-jax is not installed (test)"}
    assert list(result["pairs"]["2"]["runs"]) == ["pot-emd"]
    assert "ott-expectile: ott-jax is not installed (test)" in markdown_report(result)


def test_eval_times_are_log_spaced():
    t = eval_times(100.0, first=0.25, per_decade=6)
    assert t[0] == 0.25 and t[-1] < 100.0
    ratios = {round(b / a, 9) for a, b in zip(t, t[1:])}
    assert ratios == {round(10 ** (1 / 6), 9)}


def test_session_excludes_evaluation_time(pair):
    session = Session(pair, budget_s=10.0, n_eval=64, clock="wall", times=[0.0])
    import time

    def slow(a):
        time.sleep(0.3)
        return a

    session.report(slow, slow)
    assert session.elapsed() < 0.2  # the 0.6 s of evaluation is not training time
    assert not session.due()  # the one scheduled time was served


def _curve(points):
    return [{"seconds": s, "forward_uvp": f, "inverse_uvp": i} for s, f, i in points]


def test_time_to_reach_on_a_synthetic_curve():
    curve = _curve([(1, 50.0, 60.0), (2, 20.0, 30.0), (4, 10.0, 12.0), (8, 5.0, 6.0)])
    assert time_to_reach(curve, 20.0) == 2
    assert time_to_reach(curve, 19.9) == 4
    assert time_to_reach(curve, 5.0) == 8
    assert time_to_reach(curve, 4.9) is None
    assert time_to_reach(curve, 12.0, key="inverse_uvp") == 4
    assert time_to_reach(_curve([(1, math.nan, 1.0), (2, 3.0, 1.0)]), 100.0) == 2  # NaN never counts as reached


def test_peer_rows_ratios_and_verdicts():
    runs = {
        "w2gn-fit": {"curve": _curve([(1, 40.0, 50.0), (2, 16.0, 20.0), (4, 8.0, 9.0), (8, 2.0, 3.0)])},
        # slow peer: reaches its final 8 % at 80 s; w2gn is at 8 % after 4 s -> 20x; 2x (16 %) at 2 s; 1.1x at 4 s
        "slow": {"curve": _curve([(10, 30.0, 30.0), (80, 8.0, 2.5), (100, 8.0, 2.5)])},
        # a better peer: 1 % forward is never reached by w2gn -> no ratio, w2gn does not end below it
        "better": {"curve": _curve([(5, 1.0, 4.0)])},
        # diverged peer: any finite error beats it
        "diverged": {"curve": _curve([(1, 1e9, math.inf)])},
    }
    rows = {r["method"]: r for r in peer_rows(runs)}
    slow = rows["slow"]
    assert (slow["w2gn_seconds_2x"], slow["w2gn_seconds_1.1x"], slow["w2gn_seconds_1x"]) == (2, 4, 4)
    assert slow["peer_seconds"] == 80 and slow["ratio"] == 20 and slow["faster_target_met"]
    assert slow["ends_below_forward"] and not slow["ends_below_inverse"]  # 3.0 % inverse against the peer's 2.5 %
    better = rows["better"]
    assert better["w2gn_seconds_1x"] is None and better["ratio"] is None and not better["faster_target_met"]
    assert not better["ends_below_forward"] and better["ends_below_inverse"]
    div = rows["diverged"]
    assert div["w2gn_seconds_1x"] == 1 and div["ratio_is_lower_bound"] and div["ratio"] == 1.0
    assert div["ends_below_forward"] and div["ends_below_inverse"]
    assert plain({"a": [math.inf, math.nan, 1.0]}) == {"a": [None, None, 1.0]}


def test_compare_peers_command(tmp_path):
    """``w2gn compare peers``: JSON (standard: no NaN), Markdown table and figure, with compare gaussian's flags."""
    import json

    from w2gn.cli import main

    rc = main(["compare", "peers", "--dims", "2", "--methods", "w2gn-paper,pot-emd", "--time-budget", "0.5",
               "--eval-samples", "256", "--out-dir", str(tmp_path), "--quiet"])
    assert rc == 0
    data = json.loads((tmp_path / "peers.json").read_text(), parse_constant=lambda c: pytest.fail(f"JSON has {c}"))
    assert set(data["pairs"]["2"]["runs"]) == {"w2gn-paper", "pot-emd"}
    assert (tmp_path / "peers.png").stat().st_size > 0
    assert "| pot-emd |" in (tmp_path / "peers.md").read_text()


def test_compare_peers_rejects_unknown_method():
    from w2gn.cli import main

    with pytest.raises(SystemExit):
        main(["compare", "peers", "--methods", "w2gn-fit,nope"])
