"""``w2gn transform map.pt INPUT -o OUTPUT [--inverse]``: apply a saved map to a file of samples.

``.npy`` inputs are read in place (mapped) and ``.csv``/``.txt``/``.tsv`` inputs parsed block by
block; ``.npy`` and text outputs are written block by block. With both, memory does not grow with the
file (benchmarks/out_of_core.py). Other formats are loaded or built in memory.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..fitted_map import TransportMap
from ..io import check_output_path, open_samples, save_samples
from ..io.arrays import check_sample_file
from ..io.stream import BLOCK_ROWS, STREAM_INPUTS, STREAM_OUTPUTS, NpyRows, finite_blocks, iter_text_blocks, sample_writer
from .common import add_command, positive_int, say


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "transform", "apply a saved map to samples", run)
    p.add_argument("map", help="map file written by 'w2gn fit'")
    p.add_argument("input", help="file of samples to map (rows)")
    p.add_argument("-o", "--output", required=True, help="output file (.npy/.npz/.csv/.txt/.tsv/.pt)")
    p.add_argument("--inverse", action="store_true", help="apply the inverse map (target -> source)")
    p.add_argument("--batch-size", type=positive_int, default=8192, help="rows per batch")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    # mapping is deterministic (no --seed) and runs in the map's own precision (no --dtype)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--quiet", action="store_true", help="no message")


def _input_blocks(path: str, rows: int, dtype: np.dtype,
                  log: Callable[[str], None] | None = None) -> tuple[int | None, Iterator[np.ndarray]]:
    """``(columns or None if not known before reading, blocks of rows in dtype)`` of the input file.

    ``.npy`` files are checked in full before the first block (cheap: no map is applied); text files
    are checked as they are parsed, and a bad row stops the output before it is renamed into place.
    """
    ext = Path(path).suffix.lower()
    if ext in STREAM_INPUTS and ext != ".npy":
        check_sample_file(Path(path))  # the checks every input gets, before parsing
        return None, (b.astype(dtype) for b in finite_blocks(iter_text_blocks(path, rows, log=log), path))
    data = open_samples(path, map_above=0)  # any .npy streams: blocks are as fast as a loaded array
    if isinstance(data, NpyRows):
        return data.shape[1], data.blocks(rows, dtype)
    data = data.astype(dtype)
    return data.shape[1], (data[i:i + rows] for i in range(0, data.shape[0], rows))


def run(args: argparse.Namespace) -> int:
    """Map the samples in INPUT with a map saved by 'w2gn fit' (forward by default)."""
    from ..errors import W2GNUserError
    from ..solvers import resolve_device

    out = check_output_path(args.output, args.overwrite)
    fitted = TransportMap.load(args.map).to(resolve_device(args.device))
    want = fitted.event_shape
    dtype = np.dtype(np.float64 if fitted.dtype.is_floating_point and str(fitted.dtype) == "torch.float64"
                     else np.float32)
    # whole batches per block: the map sees exactly the batches of an in-memory transform (same result, bit for bit)
    rows = args.batch_size * max(1, BLOCK_ROWS // args.batch_size)
    notes: list[str] = []  # said once the input has passed every check: refused input gets one line only
    columns, blocks = _input_blocks(args.input, rows, dtype, log=notes.append)

    def checked(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for blk in blocks:
            if len(want) == 1 and blk.shape[1] != want[0]:
                raise W2GNUserError(f"{args.input}: has {blk.shape[1]} columns but the map is for dimension {want[0]}")
            yield blk

    if columns is not None and len(want) == 1 and columns != want[0]:
        raise W2GNUserError(f"{args.input}: has {columns} columns but the map is for dimension {want[0]}")
    apply = fitted.inverse if args.inverse else fitted.forward
    n = 0
    if out.suffix.lower() in STREAM_OUTPUTS:
        with sample_writer(out, overwrite=args.overwrite) as write:
            for blk in checked(blocks):
                write(apply(blk, args.batch_size))
                n += blk.shape[0]
    else:  # .npz/.pt: a single array, built in memory
        parts = [apply(blk, args.batch_size) for blk in checked(blocks)]
        n = sum(p.shape[0] for p in parts)
        save_samples(out, np.concatenate(parts, axis=0), overwrite=args.overwrite)
    for note in notes:
        say(note, args.quiet)
    say(f"wrote {out} ({n} rows, {'inverse' if args.inverse else 'forward'} map)", args.quiet)
    return 0
