"""Fit an optimal transport map between two arrays of samples and apply it to new points.

Run:  python examples/fit_arrays.py            (about 20 s on a laptop CPU)
      python examples/fit_arrays.py --quick    (a few seconds; what the test suite runs)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import w2gn


def fmt(a) -> list:
    """Rounded plain floats for printing."""
    return np.round(np.asarray(a, dtype=np.float64), 3).tolist()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=1500, help="training steps")
    ap.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    ap.add_argument("--out-dir", default=None, help="where to save the map (default: a temporary folder)")
    args = ap.parse_args(argv)
    iterations = 100 if args.quick else args.iterations

    # 1. Two clouds of points in R^2: rows are samples. The target is a stretched, shifted, rotated copy.
    rng = np.random.default_rng(0)
    source = rng.normal(size=(5000, 2)).astype(np.float32)
    rotation = np.array([[0.8, -0.6], [0.6, 0.8]], dtype=np.float32)
    target = (rng.normal(size=(4000, 2)) * [2.0, 0.5]) @ rotation.T + [3.0, -1.0]
    target = target.astype(np.float32)

    # 2. Fit T = grad psi_theta with the W2GN solver. The solver samples mini-batches from the arrays,
    #    so source and target may have different sizes (they are not paired).
    fitted = w2gn.fit(source, target, iterations=iterations, batch_size=256,
                      pretrain_iterations=min(300, iterations), hidden=[32, 32], seed=0, progress=not args.quick)

    # 3. Apply the map to points it has never seen, at any batch size; NumPy in -> NumPy out.
    new = rng.normal(size=(7, 2)).astype(np.float32)
    mapped = fitted.forward(new)
    back = fitted.inverse(mapped)  # grad psi_omega: the learned inverse map
    print("new points      :", fmt(new[:2]))
    print("mapped (T)      :", fmt(mapped[:2]))
    print("mapped back     :", fmt(back[:2]))

    # 4. Quantities of the fitted map: the transport cost and how well T pushes P onto Q.
    pushed = fitted.forward(source)
    print(f"W2^2 estimate   : {fitted.w2_squared(source, target):.3f} (dual), "
          f"{fitted.w2_squared(source, target, estimator='primal'):.3f} (primal)")
    print(f"mean of T(x)    : {fmt(pushed.mean(0))}  target mean {fmt(target.mean(0))}")

    # 5. Save and reload (one file, torch.save format); 'w2gn transform' reads the same file.
    out_dir = Path(args.out_dir) if args.out_dir else Path(tempfile.mkdtemp())
    path = fitted.save(out_dir / "map.pt")
    again = w2gn.TransportMap.load(path)
    assert np.allclose(again.forward(new), mapped)
    print(f"saved and reloaded {path}")


if __name__ == "__main__":
    main()
