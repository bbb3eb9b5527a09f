"""``w2gn style-transfer DIR_A DIR_B`` and ``w2gn style-apply map.pt IMAGES... -o DIR``.

Unpaired image-to-image style transfer with two Conv ICNNs (paper, Section 5.3, Appendix C.8).
"""

from __future__ import annotations

import argparse
import math

from ..applications.style import CPU_DEFAULTS, PAPER_SETTINGS
from .common import (
    add_command,
    doc_paragraph,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    say,
    write_json,
    write_text,
)
from .options import add_runtime_args, add_time_budget_arg
from .outdir import add_out_dir_arg, require_out_dir


def _defaults_note() -> str:
    c, p = CPU_DEFAULTS, PAPER_SETTINGS
    return (f"Defaults are sized for a CPU: images resized to {c['load_size']} pixels on the short side, "
            f"{c['crop']}x{c['crop']} crops, {c['features']} features per convolution, {c['iterations']} steps. "
            f"--paper selects the paper's settings (C.8, GPU): original images, {p['crop']}x{p['crop']} crops, "
            f"{p['features']} features, {p['linear_depth']} convolutions per linear stack, batch {p['batch_size']}, "
            f"{p['iterations']} steps, lambda {p['lambda_cycle']:g}, L1 {p['l1_penalty']:g}, lr {p['lr']:g}, "
            f"{p['pretrain_iterations']} pretraining steps; options given explicitly override --paper.")


def _both(key: str) -> str:
    """What an option of the CPU defaults / --paper settings defaults to, read from the two tables."""
    c, p = CPU_DEFAULTS[key], PAPER_SETTINGS[key]
    show = {None: "original size", 0: "original size"}
    c, p = show.get(c, c), show.get(p, p)
    return f"default: {c}" if c == p else f"default: {c}; --paper: {p}"


def add_parser(sub: argparse._SubParsersAction) -> None:
    _add_train(sub)
    _add_apply(sub)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "style-transfer", "fit a style map between two folders of images", run_train,
                    description=f"{doc_paragraph(run_train)} {_defaults_note()}")
    p.add_argument("dir_a", help="folder of images of domain A (source)")
    p.add_argument("dir_b", help="folder of images of domain B (target)")
    add_out_dir_arg(p, "style_run", old=("-o", "--output-dir"), text="folder for the map, grids and metrics")
    p.add_argument("--overwrite", action="store_true", help="write into OUT_DIR even if it already holds a map.pt")
    p.add_argument("--paper", action="store_true", help="start from the paper's settings instead of the CPU defaults")
    d = p.add_argument_group("data")
    d.add_argument("--crop", type=positive_int, default=None, help=f"side of the random square crops ({_both('crop')})")
    d.add_argument("--load-size", type=nonneg_int, default=None,
                   help=f"resize images so the short side has this many pixels when loading; 0 = original ({_both('load_size')})")
    d.add_argument("--channels", type=int, choices=[1, 3], default=None,
                   help="decode as grey (1) or RGB (3) (default: as the images are)")
    d.add_argument("--rotation", type=nonneg_float, default=10.0, help="max rotation in degrees (10 = pi/18, as C.8)")
    d.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    d.add_argument("--noise", type=nonneg_float, default=0.01, help="std of the pixel noise, pixels in [-1, 1]")
    d.add_argument("--max-images", type=positive_int, default=None,
                   help="use only the first N images of each folder (default: all)")
    d.add_argument("--workers", type=positive_int, default=4, help="threads decoding images")
    d.add_argument("--prefetch", type=nonneg_int, default=2, help="batches cut ahead in a background thread (0 = off)")
    d.add_argument("--test-a", default=None, help="held-out folder of A images for the final metrics (default: DIR_A)")
    d.add_argument("--test-b", default=None, help="held-out folder of B images for the final metrics (default: DIR_B)")
    d.add_argument("--eval-crops", type=positive_int, default=200, help="crops per side for the final metrics")
    n = p.add_argument_group("network (Conv ICNN, B.3)")
    n.add_argument("--features", type=positive_int, default=None, help=f"channels of every convolution ({_both('features')})")
    n.add_argument("--linear-depth", type=positive_int, default=None,
                   help=f"convolutions per linear stack ({_both('linear_depth')})")
    n.add_argument("--strided-layers", type=nonneg_int, default=None,
                   help=f"stride-2 convex convolutions ({_both('strided_layers')})")
    t = p.add_argument_group("training")
    t.add_argument("--iterations", type=positive_int, default=None, help=f"training steps ({_both('iterations')})")
    t.add_argument("--batch-size", type=positive_int, default=None, help=f"crops per domain per step ({_both('batch_size')})")
    t.add_argument("--lr", type=positive_float, default=None, help=f"Adam learning rate ({_both('lr')})")
    t.add_argument("--lambda", dest="lambda_cycle", type=nonneg_float, default=None,
                   help=f"cycle weight, per-coordinate normalisation ({_both('lambda_cycle')})")
    t.add_argument("--l1", dest="l1_penalty", type=nonneg_float, default=None, help=f"L1 weight penalty ({_both('l1_penalty')})")
    t.add_argument("--pretrain-iterations", type=nonneg_int, default=None,
                   help=f"identity pretraining steps ({_both('pretrain_iterations')})")
    t.add_argument("--log-every", type=positive_int, default=50, help="steps between statistics (and callbacks)")
    t.add_argument("--checkpoint-every", type=positive_int, default=250, help="save map.pt + grid every N steps")
    t.add_argument("--grid-size", type=nonneg_int, default=6, help="crops per row of the sample grids (0 = no grids)")
    # the solver's checkpoint/resume options (RELIABILITY.md), written every --checkpoint-every steps
    r = p.add_argument_group("training checkpoints and resuming")
    r.add_argument("--checkpoint-dir", default=None,
                   help="folder for training checkpoints, written with map.pt (default: OUT_DIR/checkpoints)")
    r.add_argument("--keep-checkpoints", type=positive_int, default=3, help="how many checkpoints to keep")
    r.add_argument("--no-checkpoints", action="store_true", help="write no training checkpoints (map.pt still)")
    r.add_argument("--resume", action="store_true",
                   help="continue from the newest valid checkpoint (fresh start if none); e.g. with a larger --iterations")
    r.add_argument("--force-resume", action="store_true", help="resume even if the data or options differ")
    add_time_budget_arg(t)
    add_runtime_args(p)


def _add_apply(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "style-apply", "translate images with a saved style map", run_apply)
    p.add_argument("map", help="map.pt written by 'w2gn style-transfer'")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    add_out_dir_arg(p, None, old=("-o", "--output-dir"), text="folder for the translated images (created if missing)")
    p.add_argument("--inverse", action="store_true", help="translate B -> A with the conjugate network")
    p.add_argument("--cycle", action="store_true", help="also write the images mapped back (<name>_cycle.png)")
    p.add_argument("--load-size", type=nonneg_int, default=None,
                   help="resize inputs to this short side first; 0 = original size (default: as in training)")
    p.add_argument("--batch-size", type=positive_int, default=4, help="images per batch")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    # translating is deterministic: no --seed; --dtype is the precision the map runs in
    add_runtime_args(p, seed=False, dtype="precision of the translation")


def _settings(args: argparse.Namespace) -> dict:
    s = dict(PAPER_SETTINGS if args.paper else CPU_DEFAULTS)
    for k in ("crop", "load_size", "features", "linear_depth", "strided_layers", "iterations", "batch_size", "lr",
              "lambda_cycle", "l1_penalty", "pretrain_iterations"):
        v = getattr(args, k, None)
        if v is not None:
            s[k] = v
    if not s["load_size"]:
        s["load_size"] = None
    return s


def run_train(args: argparse.Namespace) -> int:
    """Fit a cycle-monotone map between two unpaired image folders A and B (e.g. summer and winter photos) with
    two Conv ICNNs and the W2GN objective (both cycle terms, L1 penalty, identity pretraining copied into the
    conjugate network), on random crops augmented as in the paper's C.8 (rotations up to 10 degrees, horizontal
    flips, Gaussian noise 0.01). Writes OUT/map.pt, sample grids OUT/grid_*.png (rows: A, A->B, A->B->A, B,
    B->A, B->A->B), OUT/history.json and, at the end, OUT/metrics.json/.md (cycle error per pixel and sliced W2
    distances to the other set, translated vs. untranslated).
    """
    import torch

    from ..applications.style import evaluate, metrics_markdown, train_style_transfer
    from ..distributions.images import ImageCropSampler
    from ..errors import W2GNUserError
    from ..solvers import resolve_device, resolve_dtype

    s = _settings(args)
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    out = require_out_dir(args.out_dir)
    if out.exists() and not out.is_dir():
        raise W2GNUserError(f"{out}: exists and is not a folder; choose another --out-dir")
    if args.resume and args.no_checkpoints:
        raise W2GNUserError("--resume needs checkpoints; drop --no-checkpoints")
    if (out / "map.pt").exists() and not (args.overwrite or args.resume):
        raise W2GNUserError(f"{out}: already holds a map.pt; pass --overwrite, --resume or choose another --out-dir")
    checkpoints = {
        "checkpoint_dir": None if args.no_checkpoints else str(args.checkpoint_dir or out / "checkpoints"),
        "keep_checkpoints": args.keep_checkpoints,
        "resume": bool(args.resume), "force_resume": args.force_resume, "overwrite_checkpoints": bool(args.overwrite),
    }
    out.mkdir(parents=True, exist_ok=True)
    augment = {"rotation": math.radians(args.rotation), "flip": not args.no_flip, "noise": args.noise}
    load = {"crop": s["crop"], "channels": args.channels, "load_size": s["load_size"], "workers": args.workers,
            "max_images": args.max_images, "progress": not args.quiet}
    a = ImageCropSampler.from_folder(args.dir_a, **load, **augment)
    b = ImageCropSampler.from_folder(args.dir_b, **load, **augment)
    if a.channels != b.channels:
        raise W2GNUserError(
            f"{args.dir_a} holds {a.channels}-channel images but {args.dir_b} holds {b.channels}-channel ones; "
            "pass --channels 3 (or 1) to decode both alike"
        )
    say(f"style transfer: {len(a)} images in {args.dir_a}, {len(b)} in {args.dir_b}; {s['crop']}x{s['crop']} crops, "
        f"{s['iterations']} steps on {device}; writing {out}/", args.quiet)
    network = {k: s[k] for k in ("features", "linear_depth", "strided_layers", "dense")}
    solver_opts = {k: s[k] for k in ("iterations", "batch_size", "lr", "lambda_cycle", "l1_penalty", "pretrain_iterations")}
    fitted, solver = train_style_transfer(
        a, b, out, network=network, checkpoint_every=args.checkpoint_every, grid_size=args.grid_size,
        prefetch=args.prefetch, seed=args.seed, device=str(device), dtype=args.dtype, log_every=args.log_every,
        progress=not args.quiet, time_budget=args.time_budget, **solver_opts, **checkpoints,
    )
    if solver.resumed_from:
        say(f"resumed from {solver.resumed_from}", args.quiet)
    # final metrics on plain (unaugmented) crops, of held-out folders when given
    ea = ImageCropSampler.from_folder(args.test_a, **load) if args.test_a else a
    eb = ImageCropSampler.from_folder(args.test_b, **load) if args.test_b else b
    g = torch.Generator().manual_seed(args.seed + 999)
    xa = ea.to("cpu", dtype).sample(args.eval_crops, g, augment=False).to(device)
    xb = eb.to("cpu", dtype).sample(args.eval_crops, g, augment=False).to(device)
    metrics = evaluate(fitted, xa, xb, batch_size=s["batch_size"], seed=args.seed)
    write_json(out / "metrics.json", {"settings": s, "iterations": solver.iteration, "metrics": metrics})
    write_text(out / "metrics.md", metrics_markdown(metrics))
    m = metrics["a_to_b"]
    say(f"saved {out / 'map.pt'}; A->B cycle error/pixel {m['cycle_error_per_pixel']:.3g}, sliced W2 to B "
        f"{m['untranslated']['sw_small']:.4g} -> {m['translated']['sw_small']:.4g} (downsampled); see {out / 'metrics.md'}",
        args.quiet)
    return 0


def run_apply(args: argparse.Namespace) -> int:
    """Translate images (files or folders) with a map written by 'w2gn style-transfer': A -> B by default,
    B -> A with --inverse. Works on images of any size; by default they are resized like the training images
    (the map's load size). Writes one PNG per input into OUT_DIR.
    """
    import torch
    from PIL import Image
    from tqdm.auto import tqdm

    from ..applications.style import check_image_map, translate
    from ..errors import W2GNUserError
    from ..fitted_map import TransportMap
    from ..io.image_folders import expand_image_paths, image_mode_channels, read_image, save_image
    from ..solvers import resolve_device, resolve_dtype

    fitted = TransportMap.load(args.map)
    check_image_map(fitted)
    fitted.to(resolve_device(args.device), resolve_dtype(args.dtype))
    if args.inverse and fitted.inverse_potential is None:
        raise W2GNUserError(f"{args.map}: has no conjugate network; --inverse needs a map from 'w2gn style-transfer'")
    channels = fitted.forward_potential.channels
    style = fitted.info.get("style", {})
    load_size = style.get("load_size") if args.load_size is None else (args.load_size or None)
    paths = expand_image_paths(args.images)
    out = require_out_dir(args.out_dir)
    if out.exists() and not out.is_dir():
        raise W2GNUserError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    targets = [out / f"{p.stem}.png" for p in paths]
    if len(set(targets)) != len(targets):
        raise W2GNUserError("two inputs have the same file name stem; their outputs would overwrite each other")
    if not args.overwrite:
        clash = [t for t in targets if t.exists()]
        if clash:
            raise W2GNUserError(f"{clash[0]}: already exists; pass --overwrite to replace it")
    for p in paths:  # a grey map cannot take colour input and vice versa: say so instead of converting silently
        try:
            with Image.open(p) as im:
                c = image_mode_channels(im.mode)
        except Exception:
            c = channels  # undecodable files are reported by read_image with their name
        if c != channels:
            raise W2GNUserError(f"{p}: has {c} channel(s) but the map was trained on {channels}-channel images")
    for p, t in tqdm(list(zip(paths, targets)), disable=args.quiet, desc="translating", leave=False):
        img = torch.from_numpy(read_image(p, channels, load_size))
        y = translate(fitted, [img], inverse=args.inverse, batch_size=args.batch_size)[0]
        save_image(t, y)
        if args.cycle:
            back = translate(fitted, [y.to(fitted.dtype)], inverse=not args.inverse, batch_size=args.batch_size)[0]
            save_image(out / f"{p.stem}_cycle.png", back)
    say(f"wrote {len(paths)} image(s) to {out}/ ({'B -> A' if args.inverse else 'A -> B'})", args.quiet)
    return 0
