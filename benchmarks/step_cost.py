"""Cost of one W2GN training step relative to one forward pass of psi_theta (paper, Appendix C.2).

For each D: the solver's networks (default widths, or ``--widths paper`` = ``[D, D, D/2]``), one
batch of ``--batch-size`` samples; times (median of ``--repeats`` blocks, plain and fast interleaved
so that load from other jobs hits both alike):

* ``forward``: ``psi_theta(x)`` without a graph (inference);
* ``step``: one full :meth:`W2GNSolver.step` (sampling, loss (eq. 12), backward, both Adam steps,
  convexity projection) with ``gradient_mode="autograd"`` (plain: double backward) and
  ``"analytic"`` (fast: the Dense ICNN's explicit input-gradient, one backward);
* with ``--compile``: the fast loss+backward under ``torch.compile`` (compile time reported apart);
* ``FLOPs step/fwd``: matrix-multiply FLOPs of one step ÷ those of one forward pass, counted by
  dispatching every aten op through ``torch.utils.flop_counter``'s formulas. It is the time ratio a
  step would have if every matmul ran at the forward pass's speed, so it bounds what any schedule or
  kernel tuning can reach without removing work from the objective.

    python benchmarks/step_cost.py --dims 16 64 256
    python benchmarks/step_cost.py --dims 16 64 256 1024 --device cuda --bf16
    python benchmarks/step_cost.py --dims 8 16 64 --preset fit     # the step `w2gn fit` takes
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import flop_registry


def _shape(t):
    # torch's flop formulas take shapes where the op took tensors
    return t.shape if isinstance(t, torch.Tensor) else t


class _MatmulFlops(TorchDispatchMode):
    """Counts FLOPs of the ops torch's flop counter knows (mm, addmm, bmm, convolutions...).

    ``FlopCounterMode`` itself cannot be used here: its module hooks refuse ``autograd.grad``, which
    the plain step calls.
    """

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.flops += formula(*tree_map(_shape, args), **tree_map(_shape, kwargs), out_val=tree_map(_shape, out))
        return out


def _count_flops(fn) -> int:
    with _MatmulFlops() as counter:
        fn()
    return counter.flops


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _timeit(fn, n: int, device: str = "cpu") -> float:
    # CUDA kernels run asynchronously: wait for the queue before starting and stopping the clock
    _sync(device)
    t = time.perf_counter()
    for _ in range(n):
        fn()
    _sync(device)
    return (time.perf_counter() - t) / n


def measure(dim: int, args: argparse.Namespace) -> dict:
    from w2gn import GaussianPair, W2GNSolver

    pair = GaussianPair.random(dim, seed=0)
    dev = args.device
    p, q = pair.source.to(dev, torch.float32), pair.target.to(dev, torch.float32)
    hidden = [dim, dim, max(dim // 2, 1)] if args.widths == "paper" else None
    solvers = {}
    variants = {"autograd": {"gradient_mode": "autograd"}, "analytic": {"gradient_mode": "analytic"}}
    if args.compile:
        # the solver's own compile option: the fast loss under torch.compile, same step otherwise
        variants["compiled"] = {"gradient_mode": "analytic", "compile": True}
    if args.bf16:
        variants["bf16"] = {"gradient_mode": "analytic", "autocast_bf16": True}
    base: dict = {}
    if args.preset != "paper":
        from w2gn.solvers.presets import preset

        # the options `w2gn fit` trains with at this D (two-sided objective, expectile term, frame, ...)
        base = preset(args.preset, dim=dim)
    if args.cycle_x:
        base["cycle_x"] = True
    for name, opts in variants.items():
        s = W2GNSolver(**{**base, "iterations": 1, "pretrain_iterations": 0, "batch_size": args.batch_size,
                          "hidden": hidden, "progress": False, "device": dev, **opts})
        gen = torch.Generator(device=dev).manual_seed(0)
        s.setup(p, q, gen)
        solvers[name] = (s, gen)
    theta = solvers["autograd"][0].theta
    x = p.sample(args.batch_size, torch.Generator(device=dev).manual_seed(1))
    n = args.inner if dim < 256 else max(2, args.inner // 5)

    def fwd():
        with torch.no_grad():
            theta(x)

    steps = {m: (lambda s=s, g=g: s.step(0, p, q, g)) for m, (s, g) in solvers.items()}
    fns = {"forward": fwd, **steps}
    compile_s = float("nan")
    if args.compile:
        t0 = time.perf_counter()
        steps["compiled"]()  # the first call compiles
        compile_s = time.perf_counter() - t0
    for f in fns.values():  # warm-up
        f()
    flops = {k: _count_flops(fns[k]) for k in ("forward", "autograd", "analytic")}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(args.repeats):
        for k, f in fns.items():
            times[k].append(_timeit(f, n if k != "forward" else 3 * n, dev))
    med = {k: statistics.median(v) for k, v in times.items()}
    row = {"dim": dim, "hidden": solvers["autograd"][0].theta.hidden, "forward_ms": 1e3 * med["forward"],
           "plain_ms": 1e3 * med["autograd"], "fast_ms": 1e3 * med["analytic"],
           "plain_ratio": med["autograd"] / med["forward"], "fast_ratio": med["analytic"] / med["forward"],
           "plain_it_s": 1 / med["autograd"], "fast_it_s": 1 / med["analytic"],
           "plain_flop_ratio": flops["autograd"] / flops["forward"],
           "fast_flop_ratio": flops["analytic"] / flops["forward"]}
    if args.compile:
        row.update({"compiled_ms": 1e3 * med["compiled"], "compiled_ratio": med["compiled"] / med["forward"],
                    "compile_s": compile_s})
    if args.bf16:
        row.update({"bf16_ms": 1e3 * med["bf16"], "bf16_ratio": med["bf16"] / med["forward"]})
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--widths", choices=["default", "paper"], default="default")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--inner", type=int, default=20, help="steps per timed block (a fifth of it at D >= 256)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="also time the fast step's loss under torch.compile")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--bf16", action="store_true", help="also time the fast step under bf16 autocast (CUDA only)")
    ap.add_argument("--cycle-x", action="store_true", help="add R_X (eq. 51), as `w2gn toy` trains")
    ap.add_argument("--preset", default="paper", choices=["paper", "fit"],
                    help="the solver's options: the paper's algorithm (default) or `w2gn fit`'s preset at each D")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(d, args) for d in args.dims]
    head = "| D | widths | forward ms | plain step ms | fast step ms | plain step/fwd | fast step/fwd | plain it/s | fast it/s |"
    head += " FLOPs plain/fwd | FLOPs fast/fwd |"
    sep = "|---|---|---|---|---|---|---|---|---|---|---|"
    if args.compile:
        head += " compiled step ms | compiled step/fwd | compile s |"
        sep += "---|---|---|"
    if args.bf16:
        head += " bf16 step ms | bf16 step/fwd |"
        sep += "---|---|"
    print(head)
    print(sep)
    for r in rows:
        line = (f"| {r['dim']} | {r['hidden']} | {r['forward_ms']:.2f} | {r['plain_ms']:.1f} | {r['fast_ms']:.1f} | "
                f"{r['plain_ratio']:.1f} | {r['fast_ratio']:.1f} | {r['plain_it_s']:.1f} | {r['fast_it_s']:.1f} | "
                f"{r['plain_flop_ratio']:.1f} | {r['fast_flop_ratio']:.1f} |")
        if args.compile:
            line += f" {r['compiled_ms']:.1f} | {r['compiled_ratio']:.1f} | {r['compile_s']:.0f} |"
        if args.bf16:
            line += f" {r['bf16_ms']:.2f} | {r['bf16_ratio']:.1f} |"
        print(line)


if __name__ == "__main__":
    main()
