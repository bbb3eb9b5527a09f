"""Sample files larger than memory: ``.npy`` read in place, text read and any output written in blocks.

:class:`NpyRows` maps a 2-D ``.npy`` file read-only (the kernel pages it in on demand) and hands out
copies of blocks or of scattered rows. Pages a block read are dropped from the process
(``madvise(MADV_DONTNEED)``) after it: they stay in the page cache, so reading them again costs a
minor fault, but they no longer count in the resident set, and the peak memory of a pass over the
file does not grow with the file. Scattered rows (training batches) are read with one ``pread``
each instead (:meth:`NpyRows.take`). A read-only shared mapping is
also not "data" for ``RLIMIT_DATA``, which is what lets a process under a memory limit smaller than
the file use it (tests/test_out_of_core.py).

:func:`iter_text_blocks` parses ``.csv``/``.txt``/``.tsv`` files block by block with the rules of
:func:`w2gn.io.load_samples`; :func:`sample_writer` writes ``.npy`` and text outputs block by block
(atomically, like every output).
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import W2GNUserError
from .atomic import atomic_path, check_output_path

#: rows per block of a streamed pass (at D = 16 float32: 4 MB)
BLOCK_ROWS = 65536
#: extensions whose input is streamed (``.npy`` mapped, text parsed by block) and whose output is written by block
STREAM_INPUTS = (".npy", ".csv", ".txt", ".tsv")
STREAM_OUTPUTS = (".npy", ".csv", ".txt", ".tsv")
#: ``.npy`` files larger than this are read in place by :func:`w2gn.io.open_samples` (smaller ones are loaded:
#: an in-memory gather is much faster than one read per row, and they fit anyway)
MAP_ABOVE_BYTES = 256 * 2**20
_PAGE = mmap.PAGESIZE


class NpyRows:
    """A 2-D C-ordered numeric ``.npy`` file of rows, mapped read-only.

    Use :meth:`open` (which returns ``None`` for files it cannot map: other layouts are loaded in
    memory by the caller, whose loader also gives the messages for malformed files).
    """

    def __init__(self, path: Path, shape: tuple[int, int], dtype: np.dtype, offset: int) -> None:
        self.path = path
        self.shape = shape
        self.dtype = dtype
        self._offset = offset
        self._fh = open(path, "rb")  # noqa: SIM115 -- lives as long as the mapping
        size = offset + shape[0] * shape[1] * dtype.itemsize
        if os.fstat(self._fh.fileno()).st_size < size:
            self._fh.close()
            raise W2GNUserError(f"{path}: truncated .npy file ({os.path.getsize(path)} of {size} bytes)")
        self._map = mmap.mmap(self._fh.fileno(), size, access=mmap.ACCESS_READ) if shape[0] else None
        self.rows = (np.ndarray(shape, dtype=dtype, buffer=self._map, offset=offset) if self._map is not None
                     else np.empty(shape, dtype))
        #: fingerprint of the rows, set by :func:`w2gn.io.open_samples` when asked for
        self.digest: str | None = None

    @classmethod
    def open(cls, path: str | os.PathLike) -> NpyRows | None:
        """Map ``path`` if it is a 2-D, C-ordered, native-endian numeric ``.npy``; else ``None``."""
        p = Path(path)
        try:
            with open(p, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read(fh)
                offset = fh.tell()
        except (ValueError, OSError, EOFError):
            return None  # the in-memory loader names the problem
        if (len(shape) != 2 or fortran or not dtype.isnative or dtype.hasobject
                or not (np.issubdtype(dtype, np.number) or dtype.kind == "b") or np.issubdtype(dtype, np.complexfloating)):
            return None
        return cls(p, (int(shape[0]), int(shape[1])), dtype, offset)

    def __len__(self) -> int:
        return self.shape[0]

    def block(self, start: int, stop: int, dtype: np.dtype | type | None = None) -> np.ndarray:
        """A copy of rows ``start:stop`` (converted to ``dtype``); their pages are then dropped."""
        out = np.array(self.rows[start:stop], dtype=dtype or self.dtype, copy=True)
        self._release(start, stop)
        return out

    def take(self, index: np.ndarray, dtype: np.dtype | type | None = None) -> np.ndarray:
        """A copy of the rows at ``index`` (any order, repeats allowed), read with one ``pread`` per row.

        Not through the mapping: a fault on a mapped file maps the whole page-cache folio around the
        row (measured: one draw of 512 random rows of a 256 MB file mapped 214 MB), so random rows
        from the map would make the whole file resident within a few draws.
        """
        index = np.asarray(index, dtype=np.int64)
        rows, inverse = np.unique(index, return_inverse=True)
        size = self.shape[1] * self.dtype.itemsize
        fd, base = self._fh.fileno(), self._offset
        raw = b"".join([os.pread(fd, size, base + int(i) * size) for i in rows])
        got = np.frombuffer(raw, dtype=self.dtype).reshape(len(rows), self.shape[1])
        return got[inverse.reshape(-1)].astype(dtype or self.dtype, copy=False)

    def blocks(self, rows: int = BLOCK_ROWS, dtype: np.dtype | type | None = None) -> Iterator[np.ndarray]:
        """The file in order, ``rows`` rows at a time."""
        for start in range(0, self.shape[0], rows):
            yield self.block(start, min(start + rows, self.shape[0]), dtype)

    def scan(self, name: str, digest: bool = False) -> str | None:
        """Check the rows as :func:`~w2gn.distributions.data.validate_samples` does, one block at a time;
        with ``digest`` also return the data's fingerprint (equal to
        :func:`~w2gn.distributions.data.fingerprint` of the loaded array)."""
        n, d = self.shape
        if n < 1 or d == 0:
            raise W2GNUserError(f"{name}: is empty (shape {self.shape}); at least 1 sample(s) needed")
        # the loaded array's dtype: floating types stay, the others become float64 (validate_samples)
        kept = self.dtype if np.issubdtype(self.dtype, np.floating) else np.dtype(np.float64)
        h = hashlib.sha256(str(self.shape).encode()) if digest else None
        bad = 0
        for blk in self.blocks(dtype=kept):
            if not np.isfinite(blk).all():
                bad += int((~np.isfinite(blk)).any(axis=1).sum())
            if h is not None:
                h.update(blk.tobytes())
        if bad:
            raise W2GNUserError(f"{name}: contains NaN or inf values in {bad} row(s); clean or drop them first")
        return h.hexdigest()[:16] if h is not None else None

    def _release(self, start: int, stop: int) -> None:
        if self._map is None or not hasattr(self._map, "madvise"):
            return
        lo = (self._offset + start * self.shape[1] * self.dtype.itemsize) // _PAGE * _PAGE
        hi = min(len(self._map), self._offset + stop * self.shape[1] * self.dtype.itemsize)
        if hi > lo:
            self._map.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

    def close(self) -> None:
        """Unmap the file (arrays returned by :meth:`block`/:meth:`take` are copies and stay valid)."""
        self.rows = np.empty((0, self.shape[1]), self.dtype)
        if self._map is not None:
            self._map.close()
            self._map = None
        self._fh.close()

    def __getstate__(self) -> dict:
        # a sampler copied (deepcopy, another process) maps the file again instead of copying it
        return {"path": self.path, "shape": self.shape, "dtype": self.dtype, "offset": self._offset,
                "digest": self.digest}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["shape"], state["dtype"], state["offset"])
        self.digest = state["digest"]


# --------------------------------------------------------------------------------------- text
def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def iter_text_blocks(path: str | os.PathLike, rows: int = BLOCK_ROWS,
                     log: Callable[[str], None] | None = None) -> Iterator[np.ndarray]:
    """Parse a delimited text file of samples (``,``, tab or spaces; ``#`` comments; an optional header
    line) into float64 blocks of up to ``rows`` rows, raising :class:`W2GNUserError` for a non-numeric
    cell (with its line number among the non-blank, non-comment lines), rows of unequal widths, or a
    file without numeric rows. A first line is a header only when none of its cells is a number (a
    first line mixing numbers and text is bad data); ``log`` is told it was skipped, once the whole
    file has been read without error."""
    p = Path(path)
    header = None
    delim: str | None = ""
    width = None
    buf: list[list[float]] = []
    seen = 0
    with open(p, encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            ln = raw.strip()
            if not ln or ln.startswith("#"):
                continue
            if delim == "":
                delim = "," if "," in ln else ("\t" if "\t" in ln else None)
            seen += 1
            cells = ln.split(delim)
            try:
                row = [float(c) for c in cells]
            except ValueError:
                if seen == 1 and not any(_is_float(c) for c in cells):  # a header line
                    header = ln
                    continue
                bad = next(c for c in cells if not _is_float(c))
                raise W2GNUserError(f"{p}: line {seen} has a non-numeric cell {bad.strip()!r}") from None
            if width is None:
                width = len(row)
            elif len(row) != width:
                raise W2GNUserError(f"{p}: rows have different numbers of columns {sorted({width, len(row)})} "
                                    f"(line {seen})")
            buf.append(row)
            if len(buf) == rows:
                yield np.asarray(buf, dtype=np.float64)
                buf = []
    if seen == 0:
        raise W2GNUserError(f"{p}: the file is empty; it should hold one sample per row")
    if width is None:
        raise W2GNUserError(f"{p}: no numeric rows found")
    if buf:
        yield np.asarray(buf, dtype=np.float64)
    if header is not None and log is not None:
        log(f"{p}: skipped the header line {header[:60]!r}")


def finite_blocks(blocks: Iterator[np.ndarray], name: str) -> Iterator[np.ndarray]:
    """Pass ``blocks`` through, raising at the end of the input if any row held NaN or inf (counting
    the bad rows of the whole input, as the in-memory check does); nothing is yielded after a bad block."""
    bad = 0
    for blk in blocks:
        n = int((~np.isfinite(blk)).any(axis=1).sum())
        bad += n
        if not bad:
            yield blk
    if bad:
        raise W2GNUserError(f"{name}: contains NaN or inf values in {bad} row(s); clean or drop them first")


# ------------------------------------------------------------------------------------- output
def _npy_header(rows: int, columns: int, dtype: np.dtype) -> bytes:
    """A version-1.0 ``.npy`` header of a fixed 128 bytes, so the row count can be filled in at the end."""
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (rows, columns)})
    body = text.encode("latin1")
    pad = 128 - 10 - len(body) - 1
    if pad < 0:  # pragma: no cover -- 20-digit shapes fit
        raise ValueError("shape too long for the fixed header")
    return b"\x93NUMPY\x01\x00" + (118).to_bytes(2, "little") + body + b" " * pad + b"\n"


@contextlib.contextmanager
def sample_writer(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Callable[[np.ndarray], None]]:
    """Write ``(rows, D)`` blocks to a ``.npy``/``.csv``/``.txt``/``.tsv`` file as they come.

    Yields ``write(block)``. Like every output, the file appears only complete: blocks go to a hidden
    temporary file that is renamed at the end and removed on any error (nothing half-written is left).
    A ``.npy`` output gets its header, with the final row count, when the last block is written.
    """
    p = check_output_path(path, overwrite)
    ext = p.suffix.lower()
    if ext not in STREAM_OUTPUTS:
        raise W2GNUserError(f"{p}: cannot be written block by block; use {', '.join(STREAM_OUTPUTS)}")
    state: dict = {"rows": 0, "columns": None, "dtype": None}
    with atomic_path(p) as tmp, open(tmp, "wb") as fh:
        if ext == ".npy":
            fh.write(_npy_header(0, 0, np.dtype(np.float32)))  # a placeholder of the final length
        delim = "\t" if ext == ".tsv" else ","

        def write(block: np.ndarray) -> None:
            block = np.ascontiguousarray(block)
            if state["columns"] is None:
                state["columns"], state["dtype"] = block.shape[1], block.dtype
            if ext == ".npy":
                fh.write(block.astype(state["dtype"], copy=False).tobytes())
            else:
                np.savetxt(fh, block, delimiter=delim, fmt="%.9g")
            state["rows"] += block.shape[0]

        yield write
        if ext == ".npy":
            fh.seek(0)
            fh.write(_npy_header(state["rows"], state["columns"] or 0, state["dtype"] or np.dtype(np.float32)))
