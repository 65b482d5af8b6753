"""Atomic file writes and HDF5 helpers."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the destination folder; on success rename it
    to `path`, on any exception delete it. A failed job never leaves a
    half-written output that Snakemake would take as finished."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp creates the file 0600; give it the mode a plain open() would
    # (0666 minus the umask) so results can be shared and served.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
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
