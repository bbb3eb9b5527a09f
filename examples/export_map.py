"""Export a fitted map to TorchScript (and ONNX when installed) and run it without w2gn.

The exported file computes T(x) = grad psi_theta(x) with plain tensor operations, so a deployment
needs only PyTorch (torch.jit.load) or onnxruntime. The same is available on the command line:
    w2gn export map.pt -o map_forward.pt --format torchscript
    w2gn export map.pt -o map_inverse.onnx --format onnx --inverse

Run:  python examples/export_map.py            (about 20 s)
      python examples/export_map.py --quick
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import torch

import w2gn
from w2gn.export import export_map


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=1000, help="training steps")
    ap.add_argument("--out-dir", default=None, help="where to write the files (default: a temporary folder)")
    ap.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    args = ap.parse_args(argv)
    iterations = 60 if args.quick else args.iterations
    out = Path(args.out_dir) if args.out_dir else Path(tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(0)
    xs = rng.normal(size=(3000, 4)).astype(np.float32)
    xt = (rng.normal(size=(3000, 4)) * [2.0, 1.0, 0.5, 1.0] + 1.0).astype(np.float32)
    fitted = w2gn.fit(xs, xt, iterations=iterations, batch_size=256, hidden=[32, 32],
                      pretrain_iterations=min(300, iterations), seed=0, progress=not args.quick)

    # 1. TorchScript: forward and inverse maps, each a file that needs only torch to run
    fwd_path = export_map(fitted, out / "map_forward.pt", format="torchscript")
    inv_path = export_map(fitted, out / "map_inverse.pt", format="torchscript", inverse=True)
    forward = torch.jit.load(str(fwd_path))  # what a deployment does: no w2gn import needed
    inverse = torch.jit.load(str(inv_path))
    x = torch.randn(123, 4)  # any batch size works (the batch dimension is dynamic)
    with torch.no_grad():
        y = forward(x)
        err = (y - torch.as_tensor(fitted.forward(x))).abs().max().item()
        cycle = (inverse(y) - x).abs().mean().item()
    print(f"TorchScript {fwd_path.name}: max |exported - map| = {err:.2e}; mean |T^-1(T(x)) - x| = {cycle:.3f}")

    # 2. ONNX, when the optional extra is installed (pip install 'w2gn[onnx]')
    if importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime"):
        import onnxruntime

        onnx_path = export_map(fitted, out / "map_forward.onnx", format="onnx")
        session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        y_onnx = session.run(None, {"x": x.numpy()})[0]
        print(f"ONNX {onnx_path.name}: max |onnxruntime - map| = {np.abs(y_onnx - y.numpy()).max():.2e}")
    else:
        print("ONNX skipped: pip install 'w2gn[onnx]' to export and run ONNX files")


if __name__ == "__main__":
    main()
