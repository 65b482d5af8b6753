"""Import a script of the repository (benchmarks/, scripts/) by its path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load(relative_path: str, name: str):
    """The module at ROOT / relative_path, imported under `name`."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
