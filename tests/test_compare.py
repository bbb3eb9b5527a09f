"""The comparison harness: time-to-accuracy arithmetic, the report, and ``w2gn compare gaussian``."""

from __future__ import annotations

import json

import pytest

from w2gn.cli import main
from w2gn.testbeds.comparison import PAPER_TABLE1, accuracy_ratios, markdown_report, paper_hidden, time_to_accuracy


def _curve(points):
    return [{"iteration": float(i), "seconds": float(s), "l2_uvp": float(u)} for i, s, u in points]


def test_time_to_accuracy_and_ratios():
    w2gn = _curve([(10, 1.0, 50), (20, 2.0, 5), (30, 3.0, 0.8), (40, 4.0, 1.2), (50, 5.0, 0.9)])
    mm1 = _curve([(10, 5.0, 30), (20, 10.0, 0.85), (30, 15.0, 0.7)])
    lsot = _curve([(10, 1.0, 20), (20, 2.0, 10)])
    assert time_to_accuracy(w2gn, 0.9) == 3.0
    assert time_to_accuracy(lsot, 0.9) is None
    r = accuracy_ratios({"w2gn": w2gn, "mm1": mm1, "lsot": lsot})
    assert r["target"] == 0.9 and r["reference_seconds"] == 3.0
    assert r["methods"]["mm1"]["ratio"] == pytest.approx(10.0 / 3.0)
    assert r["methods"]["lsot"]["ratio"] is None and r["methods"]["lsot"]["lower_bound"] == pytest.approx(2.0 / 3.0)
    assert r["methods"]["w2gn"]["ratio"] == 1.0


def test_paper_hidden_and_table():
    assert paper_hidden(2, floor=1) == [2, 2, 1]
    assert paper_hidden(128, floor=32) == [128, 128, 64]
    assert paper_hidden(4, floor=32) == [32, 32, 16]
    assert PAPER_TABLE1["lsot"][4] == "3.7" and PAPER_TABLE1["w2gn"][4096] == "1.5"


def test_cli_compare_gaussian_writes_table_json_and_figure(tmp_path, capsys):
    rc = main(["compare", "gaussian", "--dims", "2", "--methods", "w2gn,lsot,mm1,mm2", "--iterations", "20",
               "--pretrain-iterations", "10", "--eval-every", "10", "--batch-size", "64", "--eval-samples", "256",
               "--mm1-inner-iterations", "5", "--mm2-inner-steps", "2", "--hidden-floor", "8",
               "--out-dir", str(tmp_path), "--quiet"])
    assert rc == 0
    data = json.loads((tmp_path / "compare_gaussian.json").read_text())
    assert {r["method"] for r in data["runs"]} == {"w2gn", "lsot", "mm1", "mm2"}
    for r in data["runs"]:
        assert r["iterations"] == 20 and len(r["curve"]) == 2 and r["seconds"] > 0
        assert r["curve"][0]["seconds"] <= r["curve"][1]["seconds"]
    assert set(data["ratios"]["2"]["methods"]) == {"w2gn", "lsot", "mm1", "mm2"}
    md = (tmp_path / "compare_gaussian.md").read_text()
    assert "MM-1" in md and "(<1)" in md and "Time-to-accuracy ratio at L2-UVP <= 1%" in md
    assert (tmp_path / "compare_gaussian.png").read_bytes()[:4] == b"\x89PNG"
    assert md == markdown_report(data)


def test_cli_compare_rejects_unknown_method(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compare", "gaussian", "--methods", "w2gn,sinkhorn"])
    assert exc.value.code == 2
    assert "unknown method" in capsys.readouterr().err
