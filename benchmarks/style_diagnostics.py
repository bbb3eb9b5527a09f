"""Cheap checks behind the style-transfer results: data statistics and the balance of the loss terms.

1. Per-channel mean and standard deviation of all pixels of trainA/trainB/testA/testB (resized as in
   ``benchmarks/style_transfer.py``): is the season difference of the training sets also in the test sets?
2. With ``--checkpoint`` (a solver checkpoint written by ``style_transfer.py --checkpoint-dir``): the
   norms of the gradients w.r.t. ``theta`` of the three parts of the W2GN loss on training batches,
   the correlation term (eq. 12) and ``lambda`` times each cycle term, at the checkpoint's live
   weights. If ``lambda`` (per coordinate, at ``3 x crop x crop`` coordinates) made the correlation
   term negligible, its gradient would be orders of magnitude below the cycle terms'.

    python benchmarks/style_diagnostics.py [--checkpoint RUN/ck/ckpt-000008000.ckpt] [--lambda 35000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from w2gn import checkpoint as ckpt
from w2gn.applications.style import style_solver
from w2gn.distributions.images import ImageCropSampler
from w2gn.networks import build_potential

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "summer2winter_yosemite"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--crop", type=int, default=32)
    ap.add_argument("--load-size", type=int, default=64)
    ap.add_argument("--checkpoint", default=None, help="solver checkpoint for the gradient comparison")
    ap.add_argument("--lambda", dest="lambda_cycle", type=float, nargs="+", default=[35000.0, 2188.0])
    ap.add_argument("--batches", type=int, default=20, help="training batches (of 8) to average the norms over")
    args = ap.parse_args()
    torch.set_num_threads(1)

    sets = {s: ImageCropSampler.from_folder(Path(args.data) / s, crop=args.crop, load_size=args.load_size, workers=1)
            for s in ("trainA", "trainB", "testA", "testB")}
    print("| set | images | mean R | mean G | mean B | std R | std G | std B |")
    print("|---|---|---|---|---|---|---|---|")
    means = {}
    for name, s in sets.items():
        px = torch.cat([im.flatten(1).double() / 127.5 - 1.0 for im in s.images()], dim=1)
        means[name] = px.mean(1)
        cells = [*px.mean(1).tolist(), *px.std(1).tolist()]
        print(f"| {name} | {len(s)} | " + " | ".join(f"{v:+.3f}" for v in cells) + " |")
    d_train, d_test = means["trainB"] - means["trainA"], means["testB"] - means["testA"]
    print("\nmean colour difference B - A (R, G, B): train " + ", ".join(f"{v:+.3f}" for v in d_train.tolist())
          + "; test " + ", ".join(f"{v:+.3f}" for v in d_test.tolist()))

    if not args.checkpoint:
        return
    state = ckpt.load(args.checkpoint)
    theta, omega = (build_potential(state["specs"][k]) for k in ("theta", "omega"))
    theta.load_state_dict(state["modules"]["theta"])
    omega.load_state_dict(state["modules"]["omega"])
    print(f"\ngradient norms w.r.t. theta at {args.checkpoint} (iteration {state['iteration']}), "
          f"mean over {args.batches} training batches of 8 augmented crops:")
    print("| lambda (per coordinate) | correlation | lambda R_Y | lambda R_X |")
    print("|---|---|---|---|")
    gen = torch.Generator().manual_seed(3)
    batches = [(sets["trainA"].sample(8, gen), sets["trainB"].sample(8, gen)) for _ in range(args.batches)]
    params = list(theta.parameters())
    for lam in args.lambda_cycle:
        solver = style_solver(lambda_cycle=lam)  # for its cycle normalisation only
        norms = torch.zeros(3, dtype=torch.float64)
        for x, y in batches:
            y_inv = omega.gradient(y, create_graph=True)
            corr = theta(x).mean() - theta(y_inv.detach()).mean()  # the stop-gradient form the solver trains
            cyc_y = lam * solver._cycle(theta.gradient(y_inv, create_graph=True), y)
            cyc_x = lam * solver._cycle(omega.gradient(theta.gradient(x, create_graph=True), create_graph=True), x)
            for i, term in enumerate((corr, cyc_y, cyc_x)):
                grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
                norms[i] += sum(float(g.double().square().sum()) for g in grads if g is not None) ** 0.5
        norms /= len(batches)
        print(f"| {lam:g} | " + " | ".join(f"{v:.1f}" for v in norms.tolist()) + " |")


if __name__ == "__main__":
    main()
