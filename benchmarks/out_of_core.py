"""Data larger than memory: peak resident memory and speed of ``w2gn transform`` and ``w2gn fit`` on
a 2 GB ``.npy`` file (D = 16, float32, 33.5 million rows).

    PYTHONPATH=src python benchmarks/out_of_core.py [--gb 2] [--fit-iterations 500] [--folder /tmp/w2gn_ooc]

Writes the source file (standard normal rows) and the target file (an affine image of them), fits a
map from the two with ``w2gn fit`` (``--iterations`` short; the point is the memory, not the map),
then maps the whole source with ``w2gn transform``. Each command runs in its own child process. Its
peak resident set size counts the file pages mapped into the process as well as its own memory:
``VmHWM``, read by the child itself at the end, and the kernel's ``ru_maxrss`` for it (``os.wait4``)
as a cross-check. Prints a Markdown table and deletes the big files at the end (``--keep`` keeps
them). Single-threaded (``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

D = 16


def write_data(folder: Path, gb: float) -> int:
    """Source (standard normal) and target (an affine image) files of ``gb`` GiB each, written with plain
    writes: a mapped write would leave this process with gigabytes resident, which a child started by
    ``vfork`` + ``exec`` reports as its own ``ru_maxrss`` (the kernel keeps the larger of the two)."""
    rows = int(gb * 2**30) // (D * 4)
    rng = np.random.default_rng(0)
    a = np.eye(D, dtype=np.float32) + 0.1 * rng.normal(size=(D, D)).astype(np.float32)
    header = {"descr": "<f4", "fortran_order": False, "shape": (rows, D)}
    with open(folder / "x.npy", "wb") as fx, open(folder / "y.npy", "wb") as fy:
        np.lib.format.write_array_header_1_0(fx, header)
        np.lib.format.write_array_header_1_0(fy, header)
        step = 1 << 20
        for i in range(0, rows, step):
            blk = rng.standard_normal(size=(min(step, rows - i), D), dtype=np.float32)
            fx.write(blk.tobytes())
            fy.write((blk @ a + 0.5).astype(np.float32).tobytes())
    return rows


#: runs ``w2gn`` and reports its own peak resident set (VmHWM of its address space, which starts
#: empty at exec) on the last line of stderr
_CHILD = """
import json, sys
from w2gn.cli import main
rc = main(sys.argv[1:])
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"vmhwm_kib": hwm}), file=sys.stderr)
sys.exit(rc)
"""


def run_child(args: list[str]) -> tuple[int, float, float, float, float]:
    """``(exit status, wall s, CPU s, peak RSS MB (VmHWM), ru_maxrss MB)`` of ``w2gn ARGS`` in a child."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, *args], env=env, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    sys.stderr.write(err)
    hwm = json.loads(err.strip().splitlines()[-1])["vmhwm_kib"] / 1024
    # CPU time is steadier than wall time on a shared machine; ru_maxrss is in KiB on Linux
    return proc.returncode, wall, usage.ru_utime + usage.ru_stime, hwm, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=2.0, help="size of each data file in GiB (default 2)")
    ap.add_argument("--fit-iterations", type=int, default=500)
    ap.add_argument("--folder", default="/tmp/w2gn_ooc")
    ap.add_argument("--keep", action="store_true", help="keep the data files")
    opts = ap.parse_args()
    folder = Path(opts.folder)
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    rows = write_data(folder, opts.gb)
    size = (folder / "x.npy").stat().st_size
    print(f"wrote 2 files of {size / 2**30:.2f} GiB ({rows} rows, D = {D}) in {time.perf_counter() - t:.0f} s",
          file=sys.stderr)
    try:
        fit = run_child(["fit", str(folder / "x.npy"), str(folder / "y.npy"), "-o", str(folder / "map.pt"),
                         "--overwrite", "--iterations", str(opts.fit_iterations), "--no-checkpoints", "--quiet"])
        assert fit[0] == 0, "fit failed"
        tr = run_child(["transform", str(folder / "map.pt"), str(folder / "x.npy"), "-o", str(folder / "out.npy"),
                        "--overwrite", "--quiet"])
        assert tr[0] == 0, "transform failed"
        out = np.load(folder / "out.npy", mmap_mode="r")
        assert out.shape == (rows, D)
    finally:
        if not opts.keep:
            for name in ("x.npy", "y.npy", "out.npy"):
                (folder / name).unlink(missing_ok=True)
            shutil.rmtree(folder, ignore_errors=True)
    print("| command | file | rows | wall s | CPU s | rows/s (wall) | rows/CPU-s | peak RSS MB (VmHWM) | ru_maxrss MB |\n"
          "|---|---|---|---|---|---|---|---|---|\n"
          f"| `w2gn transform` (default batch 8192) | {size / 2**30:.2f} GiB .npy -> .npy | {rows} | {tr[1]:.1f} | "
          f"{tr[2]:.1f} | {rows / tr[1]:,.0f} | {rows / tr[2]:,.0f} | {tr[3]:.0f} | {tr[4]:.0f} |\n"
          f"| `w2gn fit --iterations {opts.fit_iterations}` (defaults otherwise) | 2 x {size / 2**30:.2f} GiB .npy "
          f"| {rows} each | {fit[1]:.1f} | {fit[2]:.1f} | - | - | {fit[3]:.0f} | {fit[4]:.0f} |")

if __name__ == "__main__":
    main()
