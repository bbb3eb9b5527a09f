"""``w2gn color-transfer CONTENT PALETTE -o OUT``: recolour a photo with another's colours (paper, C.6)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..applications.color import C6_SETTINGS, CHUNK_PIXELS, COLOR_DEFAULTS
from ..errors import W2GNUserError
from ..solvers.presets import preset_defaults
from .common import nonneg_int, positive_int, say, write_json
from .options import ACCURACY_SPECS, add_config_options, add_runtime_args, add_training_args, training_options

#: the colour defaults (:data:`w2gn.applications.color.COLOR_DEFAULTS`) over the paper's algorithm
DEFAULTS = {**preset_defaults("paper"), **COLOR_DEFAULTS}
#: ``--paper``: Appendix C.6 as printed (:data:`w2gn.applications.color.C6_SETTINGS`) over the paper's algorithm
PAPER = {**preset_defaults("paper"), **C6_SETTINGS}
#: the schedule options of the accuracy group that colour transfer uses (the others do not apply to it)
SCHEDULE_SPECS = {k: ACCURACY_SPECS[k] for k in ("lr_schedule", "ema_decay", "init")}


def add_parser(sub: argparse._SubParsersAction) -> None:
    d, c6 = DEFAULTS, PAPER
    p = sub.add_parser(
        "color-transfer",
        help="recolour an image with the colour palette of another (pixel-wise W2GN map in RGB)",
        description="Fit a cycle-monotone map between the pixel colours of CONTENT and PALETTE (W2GN; by default a "
        f"Dense ICNN [3; {'; '.join(map(str, d['hidden']))}] of rank {d['rank']} in the {d['precondition']} frame, "
        f"which starts it at the closed-form linear map, correlations on {d['correlation_on']}, lambda "
        f"{d['lambda_cycle']:g}, L1 {d['l1_penalty']:g}, {d['iterations']} steps of {d['batch_size']} pixels, lr "
        f"{d['lr']:g} with {d['lr_schedule']} decay, applied through a {d['lut_size']}^3 look-up table) and write "
        "CONTENT recoloured with PALETTE's colours to OUT. Any image size: pixels are sampled for training and "
        "streamed in chunks when applying. --paper trains and applies as Appendix C.6 prints it (Dense ICNN "
        f"[3; {'; '.join(map(str, c6['hidden']))}], {c6['iterations']} steps of {c6['batch_size']} pixels, lr "
        f"{c6['lr']:g}, lambda {c6['lambda_cycle']:g}, correlations on {c6['correlation_on']}, the photos' own "
        "coordinates, the network on every colour). With --map, skip fitting and apply a saved map to CONTENT "
        "(other photos, video frames).",
        epilog="example: w2gn color-transfer photo.jpg sunset.jpg -o photo_sunset.jpg --inverse-output "
        "sunset_photo.jpg --save-map colors.pt --figure palettes.png",
    )
    p.add_argument("content", help="image to recolour (JPEG/PNG/TIFF/BMP/WebP; greyscale and opaque RGBA are converted)")
    p.add_argument("palette", nargs="?", help="image whose colours to use (not needed with --map)")
    p.add_argument("-o", "--output", required=True, help="recoloured CONTENT (extension picks the format)")
    p.add_argument("--inverse-output", metavar="PATH",
                   help="also write PALETTE recoloured with CONTENT's colours (default: not written)")
    p.add_argument("--save-map", metavar="PATH",
                   help="save the fitted map (.pt) to re-apply it without refitting (default: not saved)")
    p.add_argument("--map", dest="load_map", metavar="PATH",
                   help="apply this saved map instead of fitting one (default: fit a map)")
    p.add_argument("--direction", choices=["forward", "inverse"], default="forward",
                   help="with --map: forward (content->palette colours) or inverse")
    p.add_argument("--figure", metavar="PATH",
                   help="PNG of the palettes before/after (3-D RGB scatter, Figure 16b) (default: not drawn)")
    p.add_argument("--report", metavar="PATH", help="JSON with timings and palette distances (default: not written)")
    p.add_argument("--figure-pixels", type=positive_int, default=3000, help="pixels per palette in the figure")
    p.add_argument("--eval-pixels", type=positive_int, default=20000,
                   help="random pixels per image for the sliced-W2 palette distances")
    p.add_argument("--chunk-pixels", type=positive_int, default=CHUNK_PIXELS,
                   help="pixels mapped at once when applying (bounds memory)")
    p.add_argument("--lut-size", dest="lut_size", type=nonneg_int, default=DEFAULTS["lut_size"],
                   help="apply the map through a look-up table of this many nodes per RGB axis, interpolated "
                   "trilinearly (within one 8-bit level of the exact map on nearly every pixel); 0: the network on every "
                   "distinct colour")
    p.add_argument("--threads", dest="threads", type=nonneg_int, default=DEFAULTS["threads"],
                   help="torch threads for fitting and applying (0: torch's default, every core)")
    p.add_argument("--paper", action="store_true",
                   help="Appendix C.6 as printed for every option left at its default: "
                   + ", ".join(f"{k}={v}" for k, v in C6_SETTINGS.items() if v != DEFAULTS[k]))
    p.add_argument("--quality", type=positive_int, default=95, help="JPEG/WebP quality")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files (never the inputs)")
    add_training_args(p, DEFAULTS)
    add_config_options(p.add_argument_group("schedule"), DEFAULTS, SCHEDULE_SPECS)
    add_runtime_args(p)
    p.set_defaults(func=run)


def apply_paper(args: argparse.Namespace) -> None:
    """With ``--paper``, give every option left at its default C.6's value (:data:`PAPER`); options the user
    set keep their values."""
    if getattr(args, "paper", False):
        for key, value in PAPER.items():
            if hasattr(args, key) and getattr(args, key) == DEFAULTS[key]:
                setattr(args, key, value)


def _outputs(args: argparse.Namespace) -> list[Path]:
    from ..io.atomic import check_output_path
    from ..io.images import IMAGE_FORMATS, same_file

    inputs = [x for x in (args.content, args.palette, args.load_map) if x]
    outs = []
    for path, kind in ((args.output, "image"), (args.inverse_output, "image"), (args.save_map, "map"),
                       (args.figure, "png"), (args.report, "json")):
        if not path:
            continue
        for src in inputs:
            if Path(path).exists() and same_file(path, src):
                raise W2GNUserError(f"{path}: is one of the inputs; refusing to overwrite an input, choose another name")
        if kind == "image" and Path(path).suffix.lower() not in IMAGE_FORMATS:
            raise W2GNUserError(f"{path}: unknown image extension; use one of {', '.join(sorted(IMAGE_FORMATS))}")
        outs.append(check_output_path(path, args.overwrite))
    names = [str(o.resolve()) for o in outs]
    if len(set(names)) != len(names):
        raise W2GNUserError("two outputs have the same path; give each output its own file name")
    return outs


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..applications.color import fit_color_transfer, palette_distance, palette_figure, recolor, sample_pixels
    from ..fitted_map import TransportMap
    from ..io.images import read_rgb, save_rgb
    from ..solvers import resolve_device

    if args.load_map is None and args.palette is None:
        raise W2GNUserError("give a PALETTE image to fit a map, or --map PATH to apply a saved one")
    if args.load_map is not None and (args.palette is not None or args.save_map):
        raise W2GNUserError("--map applies a saved map to CONTENT only: drop PALETTE and --save-map")
    if args.inverse_output and args.palette is None:
        raise W2GNUserError("--inverse-output needs the PALETTE image")
    _outputs(args)  # validate every output path before spending time
    apply_paper(args)
    report: dict = {"content": args.content, "palette": args.palette}
    t0 = time.perf_counter()
    content = read_rgb(args.content)
    palette = read_rgb(args.palette) if args.palette else None
    report["content_size"] = [int(content.shape[1]), int(content.shape[0])]
    if palette is not None:
        report["palette_size"] = [int(palette.shape[1]), int(palette.shape[0])]
    report["read_seconds"] = time.perf_counter() - t0

    if args.load_map:
        fitted = TransportMap.load(args.load_map).to(resolve_device(args.device))
        if tuple(fitted.event_shape) != (3,):
            raise W2GNUserError(f"{args.load_map}: is a map for samples of shape {fitted.event_shape}, not RGB colours")
        report["fit_seconds"] = 0.0
    else:
        opts = {**training_options(args), **{k: getattr(args, k) for k in SCHEDULE_SPECS}, "threads": args.threads}
        say(f"fitting colour map {args.content} ({content.shape[1]}x{content.shape[0]}) -> {args.palette} "
            f"({palette.shape[1]}x{palette.shape[0]}), {opts['iterations']} steps", args.quiet)
        t0, c0 = time.perf_counter(), time.process_time()
        fitted = fit_color_transfer(content, palette, time_budget=args.time_budget, **opts)
        report["fit_seconds"] = time.perf_counter() - t0
        report["fit_cpu_seconds"] = time.process_time() - c0
        if args.save_map:
            fitted.info["content"], fitted.info["palette"] = str(args.content), str(args.palette)
            fitted.save(args.save_map)
            say(f"wrote {args.save_map}", args.quiet)

    inverse = args.direction == "inverse"
    t0, c0 = time.perf_counter(), time.process_time()
    recolored = recolor(fitted, content, inverse=inverse, chunk_pixels=args.chunk_pixels, progress=not args.quiet,
                        desc="recolour content", lut_size=args.lut_size, threads=args.threads)
    report["apply_seconds"] = time.perf_counter() - t0
    # CPU seconds of this process: on a shared machine wall time also counts the waiting
    report["apply_cpu_seconds"] = time.process_time() - c0
    report["lut_size"] = args.lut_size
    report["torch_threads"] = args.threads or torch.get_num_threads()
    report["apply_megapixels_per_second"] = content.shape[0] * content.shape[1] / 1e6 / max(report["apply_seconds"], 1e-9)
    save_rgb(args.output, recolored, overwrite=args.overwrite, quality=args.quality)
    say(f"wrote {args.output}", args.quiet)
    recolored_palette = None
    if args.inverse_output:
        t0 = time.perf_counter()
        recolored_palette = recolor(fitted, palette, inverse=True, chunk_pixels=args.chunk_pixels,
                                    progress=not args.quiet, desc="recolour palette", lut_size=args.lut_size,
                                    threads=args.threads)
        report["inverse_apply_seconds"] = time.perf_counter() - t0
        save_rgb(args.inverse_output, recolored_palette, overwrite=args.overwrite, quality=args.quality)
        say(f"wrote {args.inverse_output}", args.quiet)

    # palette distances: the number that says the transfer worked (sliced W2 in RGB units of [0, 1])
    n = args.eval_pixels
    c_pix, r_pix = sample_pixels(content, n, seed=1), sample_pixels(recolored, n, seed=1)
    if palette is not None:
        p_pix = sample_pixels(palette, n, seed=2)
        report["sw2_content_palette"] = palette_distance(c_pix, p_pix)
        report["sw2_recolored_palette"] = palette_distance(r_pix, p_pix)
        if recolored_palette is not None:
            report["sw2_inverse_content"] = palette_distance(sample_pixels(recolored_palette, n, seed=2), c_pix)
        msg = (f"palette distance (sliced W2): content vs palette {report['sw2_content_palette']:.4f}, "
               f"recoloured vs palette {report['sw2_recolored_palette']:.4f}")
        if "sw2_inverse_content" in report:
            msg += f", inverse-recoloured palette vs content {report['sw2_inverse_content']:.4f}"
        print(msg)
    print(f"fit {report['fit_seconds']:.1f}s, apply {report['apply_seconds']:.1f}s "
          f"({report['apply_megapixels_per_second']:.2f} MP/s)")

    if args.figure:
        k = args.figure_pixels
        panels = [("content", sample_pixels(content, k, 3))]
        if palette is not None:
            panels.append(("palette", sample_pixels(palette, k, 4)))
        panels.append(("content, recoloured", sample_pixels(recolored, k, 3)))
        if recolored_palette is not None:
            panels.append(("palette, recoloured", sample_pixels(recolored_palette, k, 4)))
        palette_figure(args.figure, panels, columns=2 if len(panels) > 2 else len(panels))
        say(f"wrote {args.figure}", args.quiet)
    if args.report:
        report["config"] = fitted.info.get("config", {})
        write_json(args.report, {k: (float(v) if isinstance(v, np.floating) else v) for k, v in report.items()})
        say(f"wrote {args.report}", args.quiet)
    return 0
