"""Atomic file writes, and checked reading and writing of the HDF5 and CSV
files the workflow makes (FileProblem names the file and what to do)."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd


class WriteError(OSError):
    """An output that could not be written: the message names the file,
    the reason and what to do. Nothing of it was left behind."""

    def __init__(self, path, reason: str, errno_: int | None = None):
        super().__init__(errno_, reason)
        self.path, self.reason = str(path), reason

    def __str__(self) -> str:
        return f"{self.path}: cannot write it: {self.reason}."


# What to do when a write fails, by errno.
_WRITE_ADVICE = {
    errno.ENOSPC: "the disk is full; free some space and rerun",
    errno.EDQUOT: "the disk quota is used up; free some space and rerun",
    errno.EFBIG: "the file size limit (ulimit -f) is reached; raise it and rerun",
    errno.EACCES: "no permission to write there; make the folder writable or write elsewhere",
    errno.EPERM: "no permission to write there; make the folder writable or write elsewhere",
    errno.EROFS: "the file system is read-only; write elsewhere",
}


def _write_error(path: Path, e: OSError, tmp: str | None = None) -> WriteError:
    reason = e.strerror or _h5_reason(e)
    if e.errno is None:  # h5py: the errno is only in HDF5's words
        found = [n for n in _WRITE_ADVICE if f"errno = {n}," in str(e)]
        e = OSError(found[0], reason) if found else e
    # Name another file only when it is not this output's own temporary file.
    if e.filename and str(e.filename) not in (str(path), str(tmp)) and \
            not Path(str(e.filename)).name.startswith(f".{path.name}."):
        reason += f" ({e.filename})"
    advice = _WRITE_ADVICE.get(e.errno)
    return WriteError(path, reason + (f": {advice}" if advice else ""), e.errno)


def _make_parent(path: Path) -> None:
    """Create path's folder; WriteError naming the file in the way when a
    component of the folder path is a file."""
    for anc in reversed(path.parents):
        if anc.exists() and not anc.is_dir():
            raise WriteError(path, f"{anc} is a file, not a folder; choose an output path under a folder",
                             errno.ENOTDIR)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _write_error(path, e) from None


def _host() -> str:
    return socket.gethostname().replace(".", "_").replace("-", "_") or "host"


def _tmp_prefix(path: Path) -> str:
    """Start of the name of a temporary file for `path` written by this
    process: .{name}.{host}-{pid}. (then mkstemp's letters and .tmp)."""
    return f".{path.name}.{_host()}-{os.getpid()}."


def _remove_dead_writers_tmp(path: Path) -> None:
    """Remove temporary files of `path` left by writers on this host that no
    longer run (a job killed with SIGKILL cannot delete its own; the output
    itself was never made). Files of live processes, of other hosts (a shared
    file system) and of unknown form are left alone."""
    host = _host()
    with contextlib.suppress(OSError):
        for tmp in path.parent.glob(f".{glob.escape(path.name)}.{host}-*.tmp"):
            pid = tmp.name[len(f".{path.name}.{host}-"):].split(".", 1)[0]
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            except OSError:  # alive (another user's): not ours to remove
                continue


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the destination folder; on success rename it
    to `path`, on any exception delete it. A failed job never leaves a
    half-written output that Snakemake would take as finished. Failures of
    the file system (full disk, read-only folder, a file where a folder
    should be) are WriteError naming `path`. Temporary files of `path` that a
    killed writer left (kill -9) are removed first."""
    path = Path(path)
    if path.is_dir():
        raise WriteError(path, "it is a folder; give a file path", errno.EISDIR)
    _make_parent(path)
    _remove_dead_writers_tmp(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _write_error(path, e) from None
    os.close(fd)
    # mkstemp creates the file 0600; give it the mode a plain open() would
    # (0666 minus the umask) so results can be shared and served.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise _write_error(path, e, tmp) from e
        raise


def to_attr(value):
    """A value HDF5 attributes can hold: numbers and strings as they are,
    dicts and lists as JSON text, None as the string "null"."""
    if value is None:
        return "null"
    if isinstance(value, (dict, list, tuple)) and not (
            isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value)):
        return json.dumps(value, default=float)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


# ---------------------------------------------------------------- checked files
#
# Every HDF5 and CSV file the package writes goes through write_h5 /
# write_csv and every one it reads back through read_h5 / read_csv, so a file
# that cannot be opened, lacks what it should hold or holds NaN/Inf is
# reported once, the same way, by path (FileProblem), and no NaN or Inf is
# ever written.

# HDF5 file format with checksummed metadata (superblock v3, version 2 object
# headers: HDF5 1.10+), and a Fletcher-32 checksum on every dataset's chunks,
# verified by HDF5 on every read: a truncated, overwritten or bit-flipped
# file fails to open or to read instead of giving wrong numbers.
H5_LIBVER = ("v110", "latest")

# What a user does about a damaged or outdated file the workflow made.
# Snakemake does not remake a deleted intermediate file while the results
# made from it exist, so the way is --forcerun on the file (which also reruns
# what was made from it). {path} is the damaged file.
REMAKE_HINT = ("remake it: snakemake --forcerun {path} (with your usual target and options), "
               "or rerun the mocap-refine command that writes it")


def remake_hint(path, hint: str = REMAKE_HINT) -> str:
    """`hint` (default REMAKE_HINT) for the damaged file `path`."""
    return hint.replace("{path}", str(path))

# Datasets that identify a file's kind, most specific first, for saying what
# a wrong file is (an actions file given where a reference was expected).
_KIND_MARKERS = (
    ("gains file", ("gains", "states")),
    ("result file", ("replay/qpos",)),
    ("actions file", ("actions", "torques")),
    ("reference file", ("qpos", "qvel")),
)


class FileProblem(ValueError):
    """A file that cannot be used: one sentence naming the file, what is
    wrong and what to do."""


def file_kind(f: h5py.File) -> str:
    """'reference file', 'actions file', 'result file', 'gains file' or
    'HDF5 file' (none of these), from the datasets an open file holds."""
    for kind, names in _KIND_MARKERS:
        if all(name in f for name in names):
            return kind
    return "HDF5 file"


def _nonfinite(name: str, arr: np.ndarray) -> str | None:
    """Why `arr` may not be stored or used (NaN/Inf in a float array), or None."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fc":
        return None
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    where = np.unravel_index(int(np.argmax(bad)), arr.shape) if arr.ndim else ()
    index = ", ".join(map(str, where))
    return (f"{name} holds {int(bad.sum())} non-finite value(s) (NaN or Inf; the first, "
            f"{arr[where] if arr.ndim else arr}, at index [{index}])")


@dataclass
class H5Contents:
    """Datasets (path -> array), file attributes and each dataset's
    attributes (path -> dict) of a checked HDF5 file."""
    path: str
    kind: str
    data: dict
    attrs: dict
    data_attrs: dict

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name]


def read_h5(path, what: str, datasets, attrs=(), *, shapes=None, extra: bool = False,
            hint: str = REMAKE_HINT) -> H5Contents:
    """Open and check an HDF5 file the workflow made.

    what: the file's role in messages ("reference file"); datasets: names
    that must be present; attrs: attribute names that must be present;
    shapes: name -> expected shape (None for a free axis); extra: also read
    every other dataset in the file. Every float dataset read must be finite.
    Raises FileProblem (one sentence: path, problem, `hint`) when the file is
    missing, cannot be opened (truncated, not HDF5, checksum error), is
    another kind of file, lacks a dataset or attribute, or holds NaN/Inf."""
    path = str(path)
    shapes = dict(shapes or {})
    hint = remake_hint(path, hint)

    def fail(problem: str):
        raise FileProblem(f"{path}: {problem}; {hint}.")

    if not Path(path).exists():
        raise FileProblem(f"{path}: {what} not found.")
    if Path(path).is_dir():
        raise FileProblem(f"{path}: is a folder, expected the {what}.")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        fail(f"cannot be opened as HDF5, so it is truncated or not an HDF5 file ({_h5_reason(e)})")
    # HDF5 checks its metadata checksums as it reads: a damaged object header
    # or B-tree fails anywhere in here (as RuntimeError, OSError, KeyError...).
    try:
        with f:
            kind = file_kind(f)
            missing = [n for n in datasets if not isinstance(f.get(n), h5py.Dataset)]
            if missing:
                if kind != "HDF5 file" and kind != what:
                    raise FileProblem(f"{path}: is a {kind}, not a {what} (it lacks dataset /{missing[0]}); "
                                      "check the order of the file arguments.")
                fail(f"lacks dataset /{missing[0]} of a {what}")
            names = list(datasets)
            if extra:
                found = []
                f.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None)
                names += [n for n in found if n not in names]
            data, data_attrs = {}, {}
            for name in names:
                try:
                    arr = f[name][()]
                except (OSError, ValueError, RuntimeError) as e:
                    fail(f"dataset /{name} cannot be read, so the file is damaged ({_h5_reason(e)})")
                problem = _nonfinite(f"dataset /{name}", arr)
                if problem:
                    fail(problem)
                want = shapes.get(name)
                if want is not None and (np.ndim(arr) != len(want) or
                                         any(w is not None and w != s for w, s in zip(want, np.shape(arr)))):
                    shown = tuple("any" if w is None else w for w in want)
                    fail(f"dataset /{name} has shape {np.shape(arr)}, expected {shown}")
                data[name] = arr
                data_attrs[name] = {k: from_attr(v) for k, v in f[name].attrs.items()}
            try:
                file_attrs = {k: from_attr(v) for k, v in f.attrs.items()}
            except (OSError, RuntimeError) as e:
                fail(f"its attributes cannot be read, so the file is damaged ({_h5_reason(e)})")
    except FileProblem:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as e:
        fail(f"its structure cannot be read, so the file is damaged ({_h5_reason(e)})")
    absent = [a for a in attrs if a not in file_attrs]
    if absent:
        fail(f"lacks attribute {absent[0]!r} of a {what} (made by an older version?)")
    for k, v in file_attrs.items():
        if isinstance(v, float) and not np.isfinite(v):
            fail(f"attribute {k!r} is {v}, not a finite number")
    return H5Contents(path, kind, data, file_attrs, data_attrs)


def _h5_reason(e: BaseException) -> str:
    """HDF5's own words, shortened to one clause."""
    text = str(e).strip().rstrip(".")
    text = text.replace("Unable to synchronously open file", "").replace("Can't synchronously read data", "")
    text = text.strip(" ()")
    return text or type(e).__name__


def from_attr(value):
    """An attribute as Python: bytes decoded, numpy scalars as numbers."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_h5(path, datasets: dict, attrs: dict | None = None, dataset_attrs: dict | None = None) -> None:
    """Write an HDF5 file atomically (atomic_path), checksummed (H5_LIBVER,
    Fletcher-32 on every non-empty dataset).

    datasets: name -> array (groups from '/' in names, in the given order);
    attrs: file attributes (to_attr); dataset_attrs: name -> {attribute: value}.
    Refuses (ValueError naming the file and dataset, nothing written) NaN or
    Inf in any float dataset or attribute."""
    path = str(path)
    arrays = {name: np.asarray(arr) for name, arr in datasets.items()}
    for name, arr in arrays.items():
        problem = _nonfinite(f"dataset /{name}", arr)
        if problem:
            raise ValueError(f"{path}: not written: {problem}")
    checked = {}
    for k, v in (attrs or {}).items():
        v = to_attr(v)
        if isinstance(v, float) and not np.isfinite(v):
            raise ValueError(f"{path}: not written: attribute {k!r} is {v}, not a finite number")
        checked[k] = v
    # Built in memory (HDF5's core driver; the same bytes as a file on disk)
    # and written with plain file I/O: a full disk or a size limit is then an
    # OSError at the write, never a failure inside HDF5's close (which h5py
    # cannot report and may crash on).
    f = h5py.File(Path(path).name, "w", driver="core", backing_store=False, libver=H5_LIBVER)
    try:
        for name, arr in arrays.items():
            if arr.size and arr.dtype.kind in "biuf":
                f.create_dataset(name, data=arr, chunks=True, fletcher32=True)
            else:
                f[name] = arr
            for k, v in ((dataset_attrs or {}).get(name) or {}).items():
                f[name].attrs[k] = to_attr(v)
        for k, v in checked.items():
            f.attrs[k] = v
        f.flush()
        image = f.id.get_file_image()
    finally:
        f.close()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as out:
            out.write(image)


def write_csv(path, table: pd.DataFrame, float_format: str = "%.6g", *, optional=()) -> None:
    """Write a table atomically; refuses NaN/Inf in its number columns
    (ValueError naming the file, the column and the row). In the `optional`
    columns a missing value (NaN) is written as an empty cell ("not
    measured"); Inf is refused there too."""
    path = str(path)
    numbers = table.select_dtypes("number")
    for col in numbers.columns:
        values = numbers[col].to_numpy(dtype=float)
        bad = np.isinf(values) if col in optional else ~np.isfinite(values)
        if bad.any():
            raise ValueError(f"{path}: not written: column {col!r} holds {int(bad.sum())} non-finite "
                             f"value(s) (NaN or Inf; the first at row {int(np.argmax(bad))})")
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format=float_format)


def read_csv(path, what: str, columns=(), *, text_columns=(), optional=(),
             hint: str = REMAKE_HINT) -> pd.DataFrame:
    """Read and check a CSV table the workflow made: it must parse, have
    `columns`, at least one row, and finite numbers in every column except
    `text_columns` (FileProblem, one sentence naming the file); `optional`
    columns may also have empty cells (write_csv)."""
    path = str(path)
    hint = remake_hint(path, hint)
    if not Path(path).exists():
        raise FileProblem(f"{path}: {what} not found.")
    if Path(path).is_dir():
        raise FileProblem(f"{path}: is a folder, expected the {what}.")
    # write_csv ends every row with a line break: a file that does not end
    # with one was cut short inside a row (its last number may still parse).
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(size - 1, 0))
            last = fh.read(1)
    except OSError as e:
        raise FileProblem(f"{path}: cannot read the {what} ({e.strerror}).") from None
    if size and last not in (b"\n", b"\r"):
        raise FileProblem(f"{path}: {what} does not end with a line break, so it was cut short "
                          f"inside a row; {hint}.")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FileProblem(f"{path}: is not a readable CSV {what} ({reason}); {hint}.") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        shown = ", ".join(map(repr, missing[:3])) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise FileProblem(f"{path}: is not a {what}: it lacks column(s) {shown}; {hint}.")
    if table.empty:
        raise FileProblem(f"{path}: {what} has no rows; {hint}.")
    for col in columns or table.columns:
        if col in text_columns:
            continue
        values = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if col in optional:
            bad &= table[col].notna().to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise FileProblem(f"{path}: column {col!r} row {i + 1} is {table[col].iloc[i]!r}, not a finite "
                              f"number; {hint}.")
    return table
