"""Every script in examples/ runs (with --quick) so the examples never rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))


def test_examples_exist_and_are_listed():
    assert len(SCRIPTS) >= 5
    listed = (EXAMPLES / "README.md").read_text()
    assert all(name in listed for name in SCRIPTS), "every example must be listed in examples/README.md"


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(script, tmp_path):
    args = [sys.executable, str(EXAMPLES / script), "--quick"]
    if script == "color_transfer.py":
        args += ["--out", str(tmp_path / "ct.png"), "--pixels", "2000"]
    if script in ("fit_arrays.py", "export_map.py"):
        args += ["--out-dir", str(tmp_path)]
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": "1"}
    res = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert res.returncode == 0, f"{script} failed:\n{res.stdout}\n{res.stderr}"
    assert res.stdout.strip(), f"{script} printed nothing"
    if script == "color_transfer.py":
        assert (tmp_path / "ct.png").stat().st_size > 1000
    if script == "export_map.py":
        assert (tmp_path / "map_forward.pt").is_file() and (tmp_path / "map_inverse.pt").is_file()
        err = float(res.stdout.split("max |exported - map| = ")[1].split(";")[0])
        assert err < 1e-5
