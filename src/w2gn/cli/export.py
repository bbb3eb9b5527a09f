"""``w2gn export map.pt -o out.pt --format torchscript|onnx [--inverse]``: a map that runs without w2gn."""

from __future__ import annotations

import argparse

from .common import add_command, nonneg_int, say


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "export", "export a saved map to TorchScript or ONNX", run)
    p.add_argument("map", help="map file written by 'w2gn fit'")
    p.add_argument("-o", "--output", default=None,
                   help="output file (default: MAP's name + _forward/_inverse + .pt or .onnx)")
    p.add_argument("--format", choices=["torchscript", "onnx"], default="torchscript",
                   help="artefact format")
    p.add_argument("--inverse", action="store_true", help="export the inverse map (target -> source) instead")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--check-samples", type=nonneg_int, default=1001,
                   help="random inputs the artefact is checked on after export (0 = no check)")
    g = p.add_argument_group("runtime")
    g.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help="precision of the exported graph (default: the map's)")
    g.add_argument("--device", default="cpu", help="where the map runs for the check (the artefact itself is CPU)")
    g.add_argument("--seed", type=int, default=0, help="seed of the check's random inputs")
    g.add_argument("--quiet", action="store_true", help="no messages")


def run(args: argparse.Namespace) -> int:
    """Write the forward map grad psi_theta (or the inverse grad psi_omega with --inverse) of a map saved by
    'w2gn fit' as a self-contained TorchScript or ONNX file with a dynamic batch dimension. TorchScript:
    torch.jit.load(OUT)(x). ONNX (needs pip install 'w2gn[onnx]'): onnxruntime.InferenceSession(OUT).run(None,
    {'x': x})[0]. After writing, the file is checked against the map on random inputs.
    """
    from pathlib import Path

    from ..errors import W2GNUserError
    from ..export import check_export, export_map, onnx_available
    from ..fitted_map import TransportMap
    from ..io import check_output_path
    from ..solvers import resolve_device, resolve_dtype

    if args.format == "onnx" and not onnx_available():
        raise W2GNUserError("--format onnx needs the packages onnx and onnxruntime: pip install 'w2gn[onnx]'")
    src = Path(args.map)
    default = src.with_name(f"{src.stem}_{'inverse' if args.inverse else 'forward'}{'.onnx' if args.format == 'onnx' else '.pt'}")
    out = check_output_path(args.output or default, args.overwrite)
    fitted = TransportMap.load(src)
    if args.dtype:
        fitted.to(dtype=resolve_dtype(args.dtype))
    export_map(fitted, out, args.format, args.inverse)
    direction = "inverse" if args.inverse else "forward"
    say(f"wrote {out} ({args.format}, {direction} map, dimension {fitted.event_shape[0]}, {str(fitted.dtype)[6:]})", args.quiet)
    if args.check_samples:
        fitted.to(resolve_device(args.device))
        err = check_export(fitted, out, args.format, args.inverse, args.check_samples, args.seed)
        say(f"checked on {args.check_samples | 1} random inputs: max |exported - map| = {err:.3g}", args.quiet)
        tol = 1e-4 if fitted.dtype.itemsize == 4 else 1e-9
        if not err <= tol:
            raise W2GNUserError(f"{out}: the exported map differs from the map by {err:.3g} (> {tol}); please report this")
    return 0
