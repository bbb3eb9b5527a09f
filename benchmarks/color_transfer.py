"""Colour transfer on a 10-megapixel pair: W2GN (``w2gn color-transfer``) against POT's discrete OT.

Upscales two photos of ../shared/data/color_photos to about ``--megapixels`` each, then

1. runs ``w2gn color-transfer`` in a child process (fit time, apply time, megapixels per second,
   peak resident memory of the process, sliced-W2 palette distances from its JSON report);
2. runs ``ot.da.EMDTransport`` on ``--pot-samples`` random pixels of each image with its
   out-of-sample mapping applied to every content pixel, in a child process (same numbers).

Prints a Markdown table. Example (what benchmarks/results/color_transfer.md reports)::

    python benchmarks/color_transfer.py --megapixels 10 --iterations 500 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "color_photos"


def upscale(src: Path, dst: Path, megapixels: float) -> tuple[int, int]:
    from PIL import Image

    img = Image.open(src).convert("RGB")
    f = (megapixels * 1e6 / (img.width * img.height)) ** 0.5
    size = (round(img.width * f), round(img.height * f))
    img.resize(size, Image.Resampling.BICUBIC).save(dst, quality=95)
    return size


def child_peak_mb() -> float:
    # ru_maxrss of terminated children, KiB on Linux; the max over all children so far
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def run_child(cmd: list[str], env: dict) -> tuple[float, float]:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return time.perf_counter() - t0, child_peak_mb()


def pot_only(args: argparse.Namespace) -> None:
    """Child-process body: POT EMDTransport on sampled pixels, out-of-sample map on every content pixel."""
    import ot
    import torch

    from w2gn.applications.color import palette_distance, sample_pixels
    from w2gn.io.images import read_rgb

    torch.set_num_threads(args.threads)
    content, palette = read_rgb(args.content), read_rgb(args.palette)
    n = args.pot_samples
    xs, xt = sample_pixels(content, n, 11).astype(np.float64), sample_pixels(palette, n, 12).astype(np.float64)
    t0, c0 = time.perf_counter(), time.process_time()
    da = ot.da.EMDTransport()
    da.fit(Xs=xs, Xt=xt)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    h, w = content.shape[:2]
    out = np.empty_like(content)
    rows = max(1, (1 << 16) // w)
    for s in range(0, h, rows):
        block = content[s : s + rows].reshape(-1, 3).astype(np.float64) / 255.0
        mapped = da.transform(Xs=block, batch_size=4096)
        out[s : s + rows] = np.rint(np.clip(mapped, 0, 1) * 255).astype(np.uint8).reshape(-1, w, 3)
    apply_s, apply_cpu = time.perf_counter() - t0, time.process_time() - c0
    e = args.eval_pixels
    p_pix = sample_pixels(palette, e, seed=2)
    rep = {"fit_seconds": fit_s, "apply_seconds": apply_s, "fit_cpu_seconds": fit_cpu, "apply_cpu_seconds": apply_cpu,
           "apply_megapixels_per_second": h * w / 1e6 / apply_s,
           "sw2_content_palette": palette_distance(sample_pixels(content, e, seed=1), p_pix),
           "sw2_recolored_palette": palette_distance(sample_pixels(out, e, seed=1), p_pix),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    Path(args.report).write_text(json.dumps(rep, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--content", default=str(PHOTOS / "country_house.jpg"))
    ap.add_argument("--palette", default=str(PHOTOS / "forest_road.jpg"))
    ap.add_argument("--megapixels", type=float, default=10.0)
    ap.add_argument("--iterations", type=int, default=5000, help="W2GN steps (C.6: 5000)")
    ap.add_argument("--pretrain-iterations", type=int, default=1000)
    ap.add_argument("--pot-samples", type=int, default=3000, help="pixels per image for POT's discrete OT")
    ap.add_argument("--eval-pixels", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=1, help="torch threads in the child processes")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for the figure and JSON")
    ap.add_argument("--work", default=None, help="folder for the large images (default: a temporary folder)")
    ap.add_argument("--skip-pot", action="store_true")
    ap.add_argument("--pot-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--report", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.pot_only:
        pot_only(args)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="w2gn_color_"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(args.threads),
           "MKL_NUM_THREADS": str(args.threads)}
    big_c, big_p = work / "content.jpg", work / "palette.jpg"
    size_c = upscale(Path(args.content), big_c, args.megapixels)
    size_p = upscale(Path(args.palette), big_p, args.megapixels)
    print(f"content {size_c[0]}x{size_c[1]}, palette {size_p[0]}x{size_p[1]} (bicubic upscales of "
          f"{Path(args.content).name}, {Path(args.palette).name})", flush=True)
    py = sys.executable
    _, base_mb = run_child([py, "-c", "import torch, w2gn.cli, w2gn.applications.color"], env)
    rep_path = work / "w2gn.json"
    wall, w2gn_mb = run_child([py, "-m", "w2gn", "color-transfer", str(big_c), str(big_p), "-o", str(work / "out.jpg"),
                               "--report", str(rep_path), "--figure", str(out / "color_transfer_palettes.png"),
                               "--iterations", str(args.iterations), "--pretrain-iterations", str(args.pretrain_iterations),
                               "--eval-pixels", str(args.eval_pixels), "--overwrite", "--quiet"], env)
    w = json.loads(rep_path.read_text())
    print(f"W2GN: wall {wall:.1f}s, peak RSS {w2gn_mb:.0f} MB, report {json.dumps(w)}", flush=True)
    rows = [("W2GN (Dense ICNN [3;128;128,64])", w, w2gn_mb, wall)]
    if not args.skip_pot:
        pot_path = work / "pot.json"
        wall_p, _ = run_child([py, __file__, "--pot-only", "--content", str(big_c), "--palette", str(big_p),
                               "--pot-samples", str(args.pot_samples), "--eval-pixels", str(args.eval_pixels),
                               "--threads", str(args.threads), "--report", str(pot_path)], env)
        p = json.loads(pot_path.read_text())
        print(f"POT: wall {wall_p:.1f}s, report {json.dumps(p)}", flush=True)
        rows.append((f"POT EMDTransport ({args.pot_samples} px each)", p, p["peak_rss_mb"], wall_p))
    print()
    print("| method | fit s | apply s | apply MP/s | peak RSS MB | SW2 original | SW2 recoloured |")
    print("|---|---|---|---|---|---|---|")
    for name, r, mb, _ in rows:
        print(f"| {name} | {r['fit_seconds']:.1f} | {r['apply_seconds']:.1f} | {r['apply_megapixels_per_second']:.3f} | "
              f"{mb:.0f} | {r['sw2_content_palette']:.4f} | {r['sw2_recolored_palette']:.4f} |")
    print(f"\npython+torch+w2gn import alone: {base_mb:.0f} MB RSS; content {size_c[0] * size_c[1] / 1e6:.1f} MP, "
          f"W2GN iterations {args.iterations}, threads {args.threads}")
    (out / "color_transfer.json").write_text(json.dumps({"sizes": [size_c, size_p], "base_rss_mb": base_mb,
                                                          "w2gn": {**w, "peak_rss_mb": w2gn_mb},
                                                          "pot": rows[1][1] if len(rows) > 1 else None}, indent=2))


if __name__ == "__main__":
    main()
