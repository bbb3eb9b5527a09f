"""Sanity check of style training with a known answer: B is A with a colour cast.

A = crops of testA (summer2winter_yosemite, resized to 32 px, 16x16 crops); B = the same images (in reverse
order) with +0 R, -40 G, +60 B levels added. A working W2GN style map must move A's colours onto B's.

    python benchmarks/style_colour_cast.py [LR] [ITERATIONS]      # default 1e-3 200
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from w2gn.applications.style import evaluate, train_style_transfer
from w2gn.distributions.images import ImageCropSampler

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "summer2winter_yosemite"


def main() -> None:
    torch.set_num_threads(1)
    lr = float(sys.argv[1]) if len(sys.argv) > 1 else 1e-3
    its = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    a = ImageCropSampler.from_folder(DATA / "testA", crop=16, load_size=32)
    shift = torch.tensor([0.0, -40.0, 60.0]).view(3, 1, 1)
    b = ImageCropSampler([(im.float() + shift).clamp(0, 255).to(torch.uint8) for im in a.images()[::-1]], crop=16)
    t = time.process_time()
    fitted, _ = train_style_transfer(a, b, None, network={"features": 8}, iterations=its, pretrain_iterations=100, lr=lr,
                                     log_every=its, progress=False)
    g = torch.Generator().manual_seed(1)
    xa, xb = a.sample(200, g, augment=False), b.sample(200, g, augment=False)
    m = evaluate(fitted, xa, xb)
    print(f"lr {lr}, {its} steps, {time.process_time() - t:.1f} CPU seconds")
    print("| direction | cycle error / pixel | distance | untranslated | translated |")
    print("|---|---|---|---|---|")
    for d, v in m.items():
        for k in v["untranslated"]:
            print(f"| {d} | {v['cycle_error_per_pixel']:.3g} | {k} | {v['untranslated'][k]:.4f} | {v['translated'][k]:.4f} |")
    ya = fitted.forward_potential.map(xa)
    fmt = lambda t: [round(x, 3) for x in t.mean((0, 2, 3)).tolist()]  # noqa: E731
    print(f"mean colour: A {fmt(xa)}, T(A) {fmt(ya)}, B {fmt(xb)}")


if __name__ == "__main__":
    main()
