"""Colour transfer on a 10-megapixel pair: W2GN (``w2gn color-transfer``) against POT's discrete OT.

Upscales two photos of ../shared/data/color_photos to about ``--megapixels`` each, then

1. runs ``w2gn color-transfer`` with its defaults (or ``--paper``, or the flags given after ``--w2gn-args``)
   in a child process: fit and apply seconds, the child's whole wall time, peak resident memory, the
   sliced-W2 palette distances before and after and the drop in per cent, from its JSON report;
2. re-applies the saved map exactly (the network on every distinct colour) and through the look-up table,
   in another child, and reports their largest and mean difference in 8-bit levels (not timed);
3. runs ``ot.da.EMDTransport`` on ``--pot-samples`` random pixels of each image with its out-of-sample
   mapping applied to every content pixel, in a child process (same numbers; ``--skip-pot``: not run).

Prints a Markdown table and the load average before and after each run (the machine is shared). Example
(what BENCHMARKS.md reports)::

    python benchmarks/color_transfer.py --megapixels 10 --skip-pot
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: ../shared/data/color_photos beside the checkout (a worktree one level deeper finds it one folder further up)
PHOTOS = next((d / "shared" / "data" / "color_photos" for d in ROOT.parents[:2]
               if (d / "shared" / "data" / "color_photos").is_dir()), ROOT.parent / "shared" / "data" / "color_photos")


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

    if args.threads:
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
    ap.add_argument("--iterations", type=int, default=None, help="W2GN steps (default: the command's)")
    ap.add_argument("--pretrain-iterations", type=int, default=None, help="(default: the command's)")
    ap.add_argument("--paper", action="store_true", help="W2GN with C.6's settings (w2gn color-transfer --paper)")
    ap.add_argument("--w2gn-args", default="", help="further flags for w2gn color-transfer, one string")
    ap.add_argument("--pot-samples", type=int, default=1000, help="pixels per image for POT's discrete OT")
    ap.add_argument("--eval-pixels", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch/OpenMP threads in the child processes (0: torch's default, every core)")
    ap.add_argument("--skip-check", action="store_true", help="skip the look-up table against exact map check")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for the figure and JSON")
    ap.add_argument("--work", default=None, help="folder for the large images (default: a temporary folder)")
    ap.add_argument("--skip-pot", action="store_true")
    ap.add_argument("--pot-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--check-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--map-path", help=argparse.SUPPRESS)
    ap.add_argument("--lut-size", type=int, default=33, help=argparse.SUPPRESS)
    ap.add_argument("--report", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.pot_only:
        pot_only(args)
        return
    if args.check_only:
        check_only(args)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="w2gn_color_"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    big_c, big_p = work / "content.jpg", work / "palette.jpg"
    size_c = upscale(Path(args.content), big_c, args.megapixels)
    size_p = upscale(Path(args.palette), big_p, args.megapixels)
    print(f"content {size_c[0]}x{size_c[1]}, palette {size_p[0]}x{size_p[1]} (bicubic upscales of "
          f"{Path(args.content).name}, {Path(args.palette).name})", flush=True)
    py = sys.executable
    _, base_mb = run_child([py, "-c", "import torch, w2gn.cli, w2gn.applications.color"], env)
    rep_path, map_path = work / "w2gn.json", work / "w2gn_map.pt"
    flags = ["--paper"] if args.paper else []
    for name, value in (("--iterations", args.iterations), ("--pretrain-iterations", args.pretrain_iterations)):
        if value is not None:
            flags += [name, str(value)]
    flags += shlex.split(args.w2gn_args)
    cmd = [py, "-m", "w2gn", "color-transfer", str(big_c), str(big_p), "-o", str(work / "out.jpg"),
           "--report", str(rep_path), "--save-map", str(map_path), "--figure", str(out / "color_transfer_palettes.png"),
           "--eval-pixels", str(args.eval_pixels), "--overwrite", "--quiet", *flags]
    print("command: " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    load0 = os.getloadavg()
    wall, w2gn_mb = run_child(cmd, env)
    w = {**json.loads(rep_path.read_text()), "wall_seconds": wall, "load_before": load0, "load_after": os.getloadavg()}
    print(f"W2GN: wall {wall:.1f}s, peak RSS {w2gn_mb:.0f} MB, report {json.dumps(w)}", flush=True)
    cfg = w.get("config", {})
    rows = [(f"W2GN `color-transfer {' '.join(flags) or '(defaults)'}` ([3; {'; '.join(map(str, cfg.get('hidden', [])))}], "
             f"{cfg.get('iterations')} it, LUT {w.get('lut_size')})", w, w2gn_mb, wall)]
    check = None
    if not args.skip_check:
        check_path = work / "check.json"
        run_child([py, __file__, "--check-only", "--content", str(big_c), "--map-path", str(map_path),
                   "--lut-size", str(w.get("lut_size") or 65), "--report", str(check_path)], env)
        check = json.loads(check_path.read_text())
        print(f"look-up table ({check['lut_size']}^3) against the exact map on every content pixel: {json.dumps(check)}",
              flush=True)
    if not args.skip_pot:
        pot_path = work / "pot.json"
        load0 = os.getloadavg()
        wall_p, _ = run_child([py, __file__, "--pot-only", "--content", str(big_c), "--palette", str(big_p),
                               "--pot-samples", str(args.pot_samples), "--eval-pixels", str(args.eval_pixels),
                               "--threads", str(args.threads), "--report", str(pot_path)], env)
        p = {**json.loads(pot_path.read_text()), "wall_seconds": wall_p, "load_before": load0, "load_after": os.getloadavg()}
        print(f"POT: wall {wall_p:.1f}s, report {json.dumps(p)}", flush=True)
        rows.append((f"POT EMDTransport ({args.pot_samples} px each)", p, p["peak_rss_mb"], wall_p))
    print()
    print("| method | fit s | apply s | fit + apply s | process wall s | load before/after | peak RSS MB "
          "| SW2 original | SW2 recoloured | drop |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r, mb, wall_s in rows:
        drop = 100.0 * (1.0 - r["sw2_recolored_palette"] / r["sw2_content_palette"])
        print(f"| {name} | {r['fit_seconds']:.1f} | {r['apply_seconds']:.1f} | {r['fit_seconds'] + r['apply_seconds']:.1f} "
              f"| {wall_s:.1f} | {r['load_before'][0]:.1f} / {r['load_after'][0]:.1f} | {mb:.0f} "
              f"| {r['sw2_content_palette']:.4f} | {r['sw2_recolored_palette']:.4f} | -{drop:.1f} % |")
    print(f"\npython+torch+w2gn import alone: {base_mb:.0f} MB RSS; content {size_c[0] * size_c[1] / 1e6:.1f} MP, "
          f"threads {args.threads or 'default'} (torch used {w.get('torch_threads')}), {os.cpu_count()} CPUs")
    (out / "color_transfer.json").write_text(json.dumps({"sizes": [size_c, size_p], "base_rss_mb": base_mb,
                                                          "command": cmd[2:],
                                                          "w2gn": {**w, "peak_rss_mb": w2gn_mb}, "lut_check": check,
                                                          "pot": rows[1][1] if len(rows) > 1 else None}, indent=2))


def check_only(args: argparse.Namespace) -> None:
    """Child-process body: the saved map applied exactly and through the table; their difference in levels."""
    from w2gn.applications.color import recolor
    from w2gn.fitted_map import TransportMap
    from w2gn.io.images import read_rgb

    content, fitted = read_rgb(args.content), TransportMap.load(args.map_path)
    t0 = time.perf_counter()
    exact = recolor(fitted, content, lut_size=0, progress=False)
    exact_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lut = recolor(fitted, content, lut_size=args.lut_size, progress=False)
    lut_s = time.perf_counter() - t0
    diff = np.abs(exact.astype(np.int16) - lut.astype(np.int16)).max(axis=2)
    rep = {"lut_size": args.lut_size, "max_levels": int(diff.max()), "mean_levels": float(diff.mean()),
           "fraction_over_1_level": float((diff > 1).mean()), "fraction_differing": float((diff > 0).mean()),
           "exact_apply_seconds": exact_s, "lut_apply_seconds": lut_s}
    Path(args.report).write_text(json.dumps(rep, indent=2))

if __name__ == "__main__":
    main()
