"""Colour transfer from Python: fit a map between the RGB pixel clouds of two images (paper, C.6).

Every pixel is a point in R^3. W2GN fits T = grad psi from the source image's colours to the target's
on a random subset of pixels, then recolours *all* source pixels with T (an out-of-sample map, so
the image can be of any size).

Run:  python examples/color_transfer.py                               (scikit-image's sample photos)
      python examples/color_transfer.py --source a.jpg --target b.jpg --out recoloured.png
      python examples/color_transfer.py --quick                       (a few seconds)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import w2gn


def load_rgb(path: str | None, fallback: str) -> np.ndarray:
    """An image as floats in [0, 1], shape (H, W, 3): from a file, else a sample shipped with scikit-image."""
    if path:
        from PIL import Image

        return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    try:
        import skimage.data

        return getattr(skimage.data, fallback)().astype(np.float32) / 255.0
    except ImportError:  # no scikit-image: a synthetic picture with a colour gradient
        h, w = 120, 160
        u, v = np.meshgrid(np.linspace(0, 1, w), np.linspace(0, 1, h))
        shift = 0.0 if fallback == "coffee" else 0.5
        return np.stack([u, v, (u * v + shift) % 1.0], axis=-1).astype(np.float32)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", help="image whose colours are changed (default: scikit-image's 'coffee')")
    ap.add_argument("--target", help="image whose palette is borrowed (default: scikit-image's 'chelsea')")
    ap.add_argument("--out", default="color_transfer.png", help="output figure (PNG)")
    ap.add_argument("--iterations", type=int, default=1000, help="training steps")
    ap.add_argument("--pixels", type=int, default=20000, help="pixels sampled from each image for training")
    ap.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    args = ap.parse_args(argv)
    iterations = 60 if args.quick else args.iterations

    src = load_rgb(args.source, "coffee")
    tgt = load_rgb(args.target, "chelsea")
    # pixel clouds: (H*W, 3); train on a random subset of each (the map then applies to every pixel)
    rng = np.random.default_rng(0)
    xs = src.reshape(-1, 3)
    xt = tgt.reshape(-1, 3)
    xs_train = xs[rng.choice(len(xs), min(args.pixels, len(xs)), replace=False)]
    xt_train = xt[rng.choice(len(xt), min(args.pixels, len(xt)), replace=False)]

    # a small Dense ICNN is plenty for 3-D colour clouds; lambda_cycle = D = 3 (C.4)
    fitted = w2gn.fit(xs_train, xt_train, iterations=iterations, batch_size=1024, hidden=[64, 64, 32],
                      pretrain_iterations=min(300, iterations), seed=0, progress=not args.quick)
    recoloured = np.clip(fitted.forward(xs), 0.0, 1.0).reshape(src.shape)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, img, title in zip(axes, [src, recoloured, tgt], ["source", "source recoloured by T", "target palette"]):
        ax.imshow(img)
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    out = Path(args.out)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    def fmt(a) -> list:
        return np.round(np.asarray(a, dtype=np.float64), 3).tolist()

    print(f"mean colour: source {fmt(xs.mean(0))}, recoloured {fmt(recoloured.reshape(-1, 3).mean(0))}, "
          f"target {fmt(xt.mean(0))}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
