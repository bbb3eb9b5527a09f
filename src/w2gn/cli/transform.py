"""``w2gn transform map.pt INPUT -o OUTPUT [--inverse]``: apply a saved map to a file of samples."""

from __future__ import annotations

import argparse

from ..fitted_map import TransportMap
from ..io import check_output_path, load_samples, save_samples
from .common import positive_int, say


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transform",
        help="apply a saved map to samples",
        description="Map the samples in INPUT with a map saved by 'w2gn fit' (forward by default).",
    )
    p.add_argument("map", help="map file written by 'w2gn fit'")
    p.add_argument("input", help="file of samples to map (rows)")
    p.add_argument("-o", "--output", required=True, help="output file (.npy/.npz/.csv/.txt/.tsv/.pt)")
    p.add_argument("--inverse", action="store_true", help="apply the inverse map (target -> source)")
    p.add_argument("--batch-size", type=positive_int, default=8192, help="rows per batch")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    # mapping is deterministic (no --seed) and runs in the map's own precision (no --dtype)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--quiet", action="store_true", help="no message")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import W2GNUserError
    from ..solvers import resolve_device

    out = check_output_path(args.output, args.overwrite)
    fitted = TransportMap.load(args.map).to(resolve_device(args.device))
    notes: list[str] = []  # said once the input passes every check: refused input gets one line only
    data = load_samples(args.input, log=notes.append)
    want = fitted.event_shape
    if len(want) == 1 and data.shape[1] != want[0]:
        raise W2GNUserError(f"{args.input}: has {data.shape[1]} columns but the map is for dimension {want[0]}")
    for note in notes:
        say(note, args.quiet)
    data = data.astype("float64" if fitted.dtype.is_floating_point and str(fitted.dtype) == "torch.float64" else "float32")
    result = fitted.inverse(data, args.batch_size) if args.inverse else fitted.forward(data, args.batch_size)
    save_samples(out, result, overwrite=args.overwrite)
    say(f"wrote {out} ({result.shape[0]} rows, {'inverse' if args.inverse else 'forward'} map)", args.quiet)
    return 0
