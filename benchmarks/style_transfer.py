"""Style transfer benchmark (paper, Section 5.3 / C.8) on summer2winter_yosemite: speed and distances.

Trains a W2GN style map (two Conv ICNNs, both cycle terms, lambda 35000, L1 1e-10) on random crops of
trainA (summer) -> trainB (winter), then reports on plain crops of the held-out testA/testB:

* training speed (iterations per second, after pretraining) and identity-pretraining time;
* per direction, the cycle error per pixel ``||grad psi_omega(grad psi_theta(x)) - x||^2`` (summed over
  channels, averaged over pixels) and sliced W2 distances (raw pixels, 8x8 downsampled, pixel colours)
  from the translated crops to the other test set, beside the same distances for untranslated crops;
* the same distances on plain crops of the *training* sets (how well the map fits), and for both a
  reference map that only adds the per-channel mean colour difference of the training sets: the
  held-out sets are small (145 / 112 images) and their season difference in colour is not the
  training sets' (see results/style_transfer.md), so a map that is right on the training data can
  move the test crops away from each other;
* optionally (``--fid N``) FID with the offline Inception network on N test crops per set;
* sample grids (crops: A, A->B, A->B->A, B, B->A, B->A->B; and whole test images) as small PNGs.

The default is a short CPU run (32x32 crops of images resized to 64 pixels, i.e. the paper's 128 of 256
at a quarter of the resolution; 16 features). ``--paper`` uses the paper's network and crops (GPU).

    python benchmarks/style_transfer.py                 # short CPU run, prints a Markdown table
    python benchmarks/style_transfer.py --device cuda --paper --iterations 2000
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch

from w2gn.applications.style import CPU_DEFAULTS, PAPER_SETTINGS, evaluate, save_grid, train_style_transfer, translate
from w2gn.distributions.images import ImageCropSampler
from w2gn.metrics.images import image_distances

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "summer2winter_yosemite"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA), help="folder with trainA/trainB/testA/testB")
    ap.add_argument("--paper", action="store_true", help="paper settings (128 crops of 256 images, 128 features)")
    ap.add_argument("--crop", type=int, default=32)
    ap.add_argument("--load-size", type=int, default=64, help="0 = original size")
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--linear-depth", type=int, default=None)
    ap.add_argument("--iterations", type=int, default=600)
    ap.add_argument("--pretrain-iterations", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam lr (paper 1e-4 for 20000 steps; higher for a short run)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lambda", dest="lambda_cycle", type=float, default=35000.0)
    ap.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"])
    ap.add_argument("--ema-decay", type=float, default=0.0, help="average of the weights (0 = off); the map uses it")
    ap.add_argument("--eval-crops", type=int, default=200)
    ap.add_argument("--fid", type=int, default=0, metavar="N",
                    help="also FID (offline Inception) on N test crops per set (0 = off; ~0.35 CPU-s per image)")
    ap.add_argument("--checkpoint-dir", default=None, help="write training checkpoints here (resumable)")
    ap.add_argument("--checkpoint-every", type=int, default=500)
    ap.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --checkpoint-dir")
    ap.add_argument("--track-every", type=int, default=50, help="distances on the test crops every N steps")
    ap.add_argument("--save-map", default=None, help="also save the fitted map here")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for the PNGs and JSON")
    ap.add_argument("--tag", default="style_transfer", help="file name prefix of the outputs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    s = dict(PAPER_SETTINGS if args.paper else CPU_DEFAULTS)
    if not args.paper:
        s.update(crop=args.crop, load_size=args.load_size or None, features=args.features)
    if args.linear_depth:
        s["linear_depth"] = args.linear_depth
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load = {"crop": s["crop"], "load_size": s["load_size"]}
    t0 = time.perf_counter()
    a = ImageCropSampler.from_folder(data / "trainA", **load)
    b = ImageCropSampler.from_folder(data / "trainB", **load)
    ta = ImageCropSampler.from_folder(data / "testA", **load)
    tb = ImageCropSampler.from_folder(data / "testB", **load)
    load_s = time.perf_counter() - t0

    network = {k: s[k] for k in ("features", "linear_depth", "strided_layers", "dense")}
    g = torch.Generator().manual_seed(args.seed + 7)
    xa = ta.sample(args.eval_crops, g, augment=False).to(args.device)
    xb = tb.sample(args.eval_crops, g, augment=False).to(args.device)
    # plain crops of the training sets: does the map fit the data it was trained on?
    g_train = torch.Generator().manual_seed(args.seed + 8)
    ra = a.sample(args.eval_crops, g_train, augment=False).to(args.device)
    rb = b.sample(args.eval_crops, g_train, augment=False).to(args.device)
    # reference map: shift by the training sets' per-channel mean colour difference (many crops, so exact enough)
    g_mean = torch.Generator().manual_seed(args.seed + 9)
    shift = (b.sample(4000, g_mean, augment=False).mean((0, 2, 3)) - a.sample(4000, g_mean, augment=False).mean((0, 2, 3)))
    shift = shift.view(1, -1, 1, 1).to(args.device)
    curve = []

    def track(iteration, live, stats):  # distances to the target set along training (both directions)
        if iteration % args.track_every == 0:
            row = {"iteration": iteration, "seconds": stats["seconds"]}
            for split, (sa, sb) in (("test", (xa, xb)), ("train", (ra, rb))):
                row[split] = {"a_to_b": image_distances(live.forward_potential.map(sa, 32), sb, seed=args.seed),
                              "b_to_a": image_distances(live.inverse_potential.map(sb, 32), sa, seed=args.seed)}
            curve.append(row)
        return False

    t0 = time.perf_counter()
    fitted, solver = train_style_transfer(
        a, b, None, network=network, prefetch=2, iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
        lambda_cycle=args.lambda_cycle, l1_penalty=s["l1_penalty"], pretrain_iterations=args.pretrain_iterations,
        seed=args.seed, device=args.device, log_every=args.track_every, progress=False, callback=track,
        lr_schedule=args.lr_schedule, ema_decay=args.ema_decay, checkpoint_every=args.checkpoint_every,
        checkpoint_dir=args.checkpoint_dir, resume=args.resume,
    )
    total_s = time.perf_counter() - t0
    train_s = solver.history[-1]["seconds"]
    its = solver.iteration / train_s

    dev = fitted.device
    if args.save_map:
        fitted.save(args.save_map)
    metrics = evaluate(fitted, xa, xb, batch_size=32, seed=args.seed)
    metrics_train = evaluate(fitted, ra, rb, batch_size=32, seed=args.seed)
    mean_shift = {
        split: {"a_to_b": image_distances(sa + shift, sb, seed=args.seed),
                "b_to_a": image_distances(sb - shift, sa, seed=args.seed)}
        for split, (sa, sb) in (("test", (xa, xb)), ("train", (ra, rb)))
    }
    colours = {name: [round(v, 4) for v in t.mean((0, 2, 3)).tolist()] for name, t in (
        ("testA", xa), ("testB", xb), ("testA->B", fitted.forward_potential.map(xa, 32)),
        ("testB->A", fitted.inverse_potential.map(xb, 32)), ("trainA", ra), ("trainB", rb),
        ("trainA->B", fitted.forward_potential.map(ra, 32)), ("trainB->A", fitted.inverse_potential.map(rb, 32)))}
    fid = None
    if args.fid:
        from w2gn.metrics.fid import InceptionFeatures

        t_fid = time.perf_counter()
        m = evaluate(fitted, xa[: args.fid], xb[: args.fid], batch_size=32, seed=args.seed,
                     fid_features=InceptionFeatures(device=args.device))
        fid = {d: {k: v["fid"] for k, v in m[d].items() if k != "cycle_error_per_pixel"} for d in m}
        fid["crops"], fid["seconds"] = args.fid, time.perf_counter() - t_fid

    rows_a, rows_b = xa[:6], xb[:6]
    fwd, inv = fitted.forward_potential, fitted.inverse_potential
    ya, yb = fwd.map(rows_a).cpu(), inv.map(rows_b).cpu()
    save_grid(out / f"{args.tag}_crops.png",
              [rows_a.cpu(), ya, inv.map(ya.to(dev)).cpu(), rows_b.cpu(), yb, fwd.map(yb.to(dev)).cpu()],
              ["summer", "→winter", "cycled", "winter", "→summer", "cycled"])
    whole_a, whole_b = ta.images(range(4)), tb.images(range(4))
    save_grid(out / f"{args.tag}_whole.png",
              [torch.stack([w.float() / 127.5 - 1 for w in whole_a]), torch.stack(translate(fitted, whole_a)),
               torch.stack([w.float() / 127.5 - 1 for w in whole_b]), torch.stack(translate(fitted, whole_b, inverse=True))],
              ["summer", "→winter", "winter", "→summer"])

    from PIL import Image

    for name in (f"{args.tag}_crops.png", f"{args.tag}_whole.png"):  # 256-colour palette: small files to commit
        with Image.open(out / name) as im:
            small = im.convert("RGB").quantize(256)
        small.save(out / name, optimize=True)

    record = {
        "command": "python benchmarks/style_transfer.py " + " ".join(f"{k}={v}" for k, v in vars(args).items()),
        "settings": {**s, "iterations": args.iterations, "lr": args.lr, "batch_size": args.batch_size,
                     "pretrain_iterations": args.pretrain_iterations, "lambda_cycle": args.lambda_cycle},
        "machine": platform.processor() or platform.machine(), "device": str(dev), "threads": args.threads,
        "torch": torch.__version__, "images": {"trainA": len(a), "trainB": len(b), "testA": len(ta), "testB": len(tb)},
        "load_seconds": load_s, "pretrain_relative_loss": solver.pretrain_loss, "total_seconds": total_s,
        "train_seconds": train_s, "iterations_per_second": its, "metrics": metrics, "metrics_train": metrics_train,
        "mean_shift_reference": {"shift": shift.flatten().tolist(), **mean_shift}, "mean_colours": colours, "fid": fid,
        "resumed_from": solver.resumed_from, "last_stats": solver.history[-1], "curve": curve,
    }
    (out / f"{args.tag}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"device {dev}, threads {args.threads}; crops {s['crop']}x{s['crop']} (load size {s['load_size']}), "
          f"features {s['features']}, linear depth {s['linear_depth']}, batch {args.batch_size}")
    print(f"pretraining ({args.pretrain_iterations} steps) relative loss {solver.pretrain_loss:.3g}; "
          f"total {total_s:.0f} s; training {solver.iteration} steps in {train_s:.0f} s = {its:.3f} it/s")
    print()
    print("| crops | direction | cycle error / pixel | distance | untranslated | translated | change | mean-shift reference |")
    print("|---|---|---|---|---|---|---|---|")
    for split, ms in (("test", metrics), ("train", metrics_train)):
        for direction, m in ms.items():
            for k, v0 in m["untranslated"].items():
                v1, ref = m["translated"][k], mean_shift[split][direction][k]
                print(f"| {split} | {direction.replace('_', ' ')} | {m['cycle_error_per_pixel']:.3g} | {k} | {v0:.4f} | "
                      f"{v1:.4f} | {100 * (v1 - v0) / v0:+.1f}% | {ref:.4f} |")
    if fid is not None:
        print(f"\nFID on {args.fid} test crops per set ({fid['seconds']:.0f} s): " + "; ".join(
            f"{d.replace('_', ' ')} {fid[d]['untranslated']:.2f} -> {fid[d]['translated']:.2f}" for d in ("a_to_b", "b_to_a")))
    print("\nmean colour (R, G, B): " + "; ".join(f"{k} {v}" for k, v in colours.items()))
    print()
    print("| step | test A→B sw_small | test A→B sw_colour | test B→A sw_small | test B→A sw_colour | "
          "train A→B sw_small | train A→B sw_colour | train B→A sw_small | train B→A sw_colour |")
    print("|---|" + "---|" * 8)
    cells = [metrics[d]["untranslated"][k] for d in ("a_to_b", "b_to_a") for k in ("sw_small", "sw_colour")]
    cells += [metrics_train[d]["untranslated"][k] for d in ("a_to_b", "b_to_a") for k in ("sw_small", "sw_colour")]
    print("| untranslated | " + " | ".join(f"{v:.4f}" for v in cells) + " |")
    for row in curve:
        cells = [row[sp][d][k] for sp in ("test", "train") for d in ("a_to_b", "b_to_a") for k in ("sw_small", "sw_colour")]
        print(f"| {row['iteration']} | " + " | ".join(f"{v:.4f}" for v in cells) + " |")
    if not math.isfinite(its):
        raise SystemExit("no training steps were timed")


if __name__ == "__main__":
    main()
