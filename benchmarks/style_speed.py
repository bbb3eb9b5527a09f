"""Training speed of the style-transfer objective (two Conv ICNNs, both cycle terms; paper C.8) on random crops.

Times :meth:`W2GNSolver.step` of :func:`w2gn.applications.style.style_solver` on batches of random
``3 x crop x crop`` images already on the device (so the number is the networks' cost, not the data
loader's), for each crop size and feature width given; prints iterations per second.

    python benchmarks/style_speed.py --crops 32 64 --features 16 32              # CPU
    python benchmarks/style_speed.py --device cuda --crops 128 --features 64 128  # the paper's 128x128 crops
"""

from __future__ import annotations

import argparse
import time

import torch

from w2gn.applications.style import style_potential, style_solver
from w2gn.distributions import TensorSampler


def measure(crop: int, features: int, args: argparse.Namespace) -> dict:
    dev = args.device
    gen = torch.Generator(device=dev).manual_seed(0)
    imgs = torch.rand(64, 3, crop, crop, device=dev, generator=gen) * 2 - 1
    p, q = TensorSampler(imgs), TensorSampler(imgs.flip(1))
    solver = style_solver(iterations=1, pretrain_iterations=0, batch_size=args.batch_size, device=dev, progress=False)
    solver.setup(p, q, gen, potential=style_potential(features=features).to(dev))

    def sync():
        if dev.startswith("cuda"):
            torch.cuda.synchronize(dev)

    for i in range(args.warmup):
        solver.step(i, p, q, gen)
    sync()
    t = time.perf_counter()
    for i in range(args.steps):
        solver.step(i, p, q, gen)
    sync()
    sec = (time.perf_counter() - t) / args.steps
    return {"crop": crop, "features": features, "batch": args.batch_size, "ms_per_step": 1e3 * sec, "it_s": 1 / sec}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--crops", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--features", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else f"CPU, {args.threads} thread(s)"
    print(f"device: {dev_name}")
    print("| crop | features | batch | ms / step | it/s |")
    print("|---|---|---|---|---|")
    for c in args.crops:
        for f in args.features:
            r = measure(c, f, args)
            print(f"| {c}x{c} | {f} | {r['batch']} | {r['ms_per_step']:.1f} | {r['it_s']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
