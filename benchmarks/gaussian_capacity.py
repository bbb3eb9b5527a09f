"""Can the paper's Dense ICNN represent the Gaussian OT map? Supervised check, no W2GN involved.

Fits ``grad psi`` of a Dense ICNN ``[1; D, D, D/2]`` (the widths of C.4) by regression onto the
closed-form map of ``GaussianPair.random(D, seed)`` (mean squared error over fresh batches of P,
Adam, convexity projection after each step) and prints the L2-UVP on held-out samples. A small error
here means a W2GN fit that stalls higher is limited by its training objective, not by the network.

    PYTHONPATH=src python benchmarks/gaussian_capacity.py --dim 256 --lr 3e-4 --iterations 2000
"""

from __future__ import annotations

import argparse

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--pair-seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from w2gn import GaussianPair
    from w2gn.metrics import l2_uvp
    from w2gn.networks import DenseICNN

    d = args.dim
    pair = GaussianPair.random(d, seed=args.pair_seed)
    gen = torch.Generator().manual_seed(12345)
    x_eval = pair.source.sample(4000, gen).float()
    t_eval = pair.forward_map(x_eval).float()
    net = DenseICNN(d, [d, d, max(d // 2, 1)], rank=1, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(0)
    print("| iteration | L2-UVP % (held out) |\n|---|---|")
    every = max(1, args.iterations // 5)
    for it in range(args.iterations + 1):
        if it % every == 0:
            with torch.no_grad():
                uvp = l2_uvp(net.gradient_analytic(x_eval), t_eval, pair.target.variance)
            print(f"| {it} | {uvp:.4f} |", flush=True)
        xb = pair.source.sample(args.batch_size, g).float()
        loss = (net.gradient_analytic(xb) - pair.forward_map(xb).float()).square().sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        net.project()


if __name__ == "__main__":
    main()
