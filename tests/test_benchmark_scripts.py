"""The issue-18 diagnostics in benchmarks/: the stretch measure against a closed form, and a short run of each."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, monkeypatch):
    # as when the script runs: its own folder on sys.path, for the shared helpers (benchmarks/_shared.py)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_stretch_is_the_top_eigenvalue_of_a_linear_maps_matrix(monkeypatch):
    g = torch.Generator().manual_seed(0)
    b = torch.randn(5, 5, generator=g, dtype=torch.float64)
    a = b @ b.T + 0.1 * torch.eye(5, dtype=torch.float64)  # symmetric positive definite: grad of 1/2 x^T A x
    x = torch.randn(7, 5, generator=g, dtype=torch.float64)
    top = _load("error_by_stretch", monkeypatch).jacobian_top_eigenvalue(lambda z: z @ a.T, x)
    assert torch.allclose(top, torch.linalg.eigvalsh(a)[-1].expand(7), rtol=1e-6)


def test_oracle_regression_then_error_by_stretch_run_on_a_hard_pair(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    saved = tmp_path / "oracle.pt"
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "oracle_regression.py"), "--family", "hard",
                          "--dim", "2", "--steps", "60", "--evals", "3", "--save", str(saved)],
                         capture_output=True, text=True, env=env, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    steps = [r for r in rows if "step" in r]
    assert steps[-1]["step"] == 60
    # regression onto the true map moves the pretrained identity towards it
    assert steps[-1]["forward_uvp"] < 0.5 * steps[0]["forward_uvp"]
    table = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "error_by_stretch.py"), "--family", "hard",
                            "--dim", "2", "--potential", str(saved), "--bins", "3", "--samples", "2000"],
                           capture_output=True, text=True, env=env, check=True).stdout
    result = json.loads(table.splitlines()[-1])
    shares = [b["share"] for b in result["bins"]]
    assert len(shares) == 3 and abs(sum(shares) - 1) < 1e-9
    assert abs(sum(b["forward_share"] for b in result["bins"]) - 1) < 1e-9


def test_ensemble_average_scores_a_map_with_itself_as_alone_and_an_average_below_its_members_mean(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    paths = []
    for seed in (0, 1):
        paths.append(str(tmp_path / f"m{seed}.pt"))
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "frame_ablation.py"), "--family", "hard", "--dim", "2",
                        "--iterations", "40", "--refine", "0", "--seed", str(seed), "--save", paths[-1]],
                       capture_output=True, text=True, env=env, check=True)
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ensemble_average.py"), "--family", "hard", "--dim", "2",
                          "--eval-samples", "2000", paths[0], paths[0], paths[1]],
                         capture_output=True, text=True, env=env, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    corr = {tuple(r["pair"]): r["forward_error_correlation"] for r in rows if "pair" in r}
    assert corr[(paths[0], paths[0])] == 1.0 and -1.0 <= corr[(paths[0], paths[1])] <= 1.0
    score = {tuple(r["members"]): r for r in rows if "members" in r}
    alone, other = score[(paths[0],)], score[(paths[1],)]
    assert abs(score[(paths[0], paths[0])]["forward_uvp"] - alone["forward_uvp"]) < 1e-3 * alone["forward_uvp"]
    # |(d1 + d2) / 2|^2 <= (|d1|^2 + |d2|^2) / 2: averaging two maps never scores worse than their mean
    mean = (alone["forward_uvp"] + other["forward_uvp"]) / 2
    assert score[(paths[0], paths[1])]["forward_uvp"] <= mean * (1 + 1e-6)
    assert any("common_error_affine_share" in r for r in rows)


def test_forward_refinement_inverts_the_inverse_network(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    path = str(tmp_path / "m.pt")
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "frame_ablation.py"), "--family", "hard", "--dim", "2",
                    "--iterations", "40", "--refine", "0", "--seed", "0", "--save", path],
                   capture_output=True, text=True, env=env, check=True)
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "forward_refinement.py"), path, "--family", "hard",
                          "--dim", "2", "--eval-samples", "1000", "--steps", "50"],
                         capture_output=True, text=True, env=env, check=True).stdout
    (row,) = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    # the refined forward map solves grad psi_omega(y) = x: its residual is far below the amortised map's
    assert row["median_residual_after"] < 0.1 * row["median_residual_before"]
    assert row["rows_kept"] > 0.5
    assert 0.0 <= row["forward_uvp_refined"] < 100.0 and 0.0 <= row["forward_uvp_amortised"] < 100.0


def test_peers_merge_lays_later_runs_over_the_first_and_keeps_every_files_metadata(monkeypatch):
    merge = _load("peers", monkeypatch).merge_results

    def result(runs: dict[str, dict[str, float]], date: str) -> dict:
        return {"config": {"dims": [int(d) for d in runs], "methods": sorted({m for r in runs.values() for m in r})},
                "not_run": {}, "meta": {"date": date},
                "pairs": {d: {"pair": f"hard-d{d}", "baselines": {}, "runs": {m: {"final": v} for m, v in r.items()}}
                          for d, r in runs.items()}}

    first = result({"8": {"peer": 1.0, "w2gn-fit": 2.0}, "16": {"peer": 3.0, "w2gn-fit": 4.0}}, "old")
    rerun = result({"16": {"w2gn-fit": 0.5}}, "new")
    added = result({"32": {"w2gn-fit": 6.0}}, "newer")
    merged = merge([first, rerun, added], ["a.json", "b.json", "c.json"])
    assert merged["pairs"]["8"]["runs"] == first["pairs"]["8"]["runs"]  # untouched
    assert merged["pairs"]["16"]["runs"] == {"peer": {"final": 3.0}, "w2gn-fit": {"final": 0.5}}  # replaced, peer kept
    assert merged["pairs"]["32"]["runs"] == {"w2gn-fit": {"final": 6.0}}  # added
    assert merged["config"]["dims"] == [8, 16, 32]
    assert merged["meta"]["date"] == "old"
    assert merged["meta"]["merged"]["b.json"]["date"] == "new"
    assert merged["meta"]["merged"]["c.json"]["runs"] == {"32": ["w2gn-fit"]}
    assert first["pairs"]["16"]["runs"]["w2gn-fit"] == {"final": 4.0}  # the inputs are not changed
