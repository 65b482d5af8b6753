"""scripts/compare_results.py: timing attributes are exempt, any other changed
byte makes it exit 1 and name the dataset or column."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_results.py"


def _write_tree(root: Path, *, wall_s: float, seconds: float, actions_delta: float = 0.0, err: str = "0.25"):
    (root / "clip" / "actions").mkdir(parents=True)
    actions = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
    actions[2, 1] += actions_delta
    with h5py.File(root / "clip" / "actions" / "feedback.h5", "w") as f:
        f.attrs["method"] = "feedback"
        f.attrs["wall_s"] = wall_s
        f.attrs["replay_s"] = wall_s / 10
        f.attrs["cost_replays"] = 10.0
        f.create_dataset("actions", data=actions).attrs["units"] = "normalised"
        f.create_dataset("torques", data=np.arange(12.0).reshape(4, 3))
        f.create_dataset("history/loss", data=[3.0, 2.0])
        f.create_dataset("history/seconds", data=[seconds, 2 * seconds])
    (root / "summary.csv").write_text(f"clip,method,wall_s,err50_rad\nclip,feedback,{wall_s},{err}\n")


def _run(a: Path, b: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(a), str(b)], capture_output=True, text=True)


def test_only_timings_differ_exits_0(tmp_path):
    _write_tree(tmp_path / "a", wall_s=1.5, seconds=0.1)
    _write_tree(tmp_path / "b", wall_s=2.25, seconds=0.3)
    proc = _run(tmp_path / "a", tmp_path / "b")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| clip/actions/feedback.h5"))
    assert "| identical |" in row
    assert "@wall_s" in row and "history/seconds" in row  # listed as exempt differences


def test_changed_action_exits_1_naming_the_dataset(tmp_path):
    _write_tree(tmp_path / "a", wall_s=1.5, seconds=0.1)
    _write_tree(tmp_path / "b", wall_s=1.5, seconds=0.1, actions_delta=1e-15)
    proc = _run(tmp_path / "a", tmp_path / "b")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| clip/actions/feedback.h5"))
    assert "| differs | actions |" in row
    assert "torques" not in row
    assert "summary.csv | csv | identical" in proc.stdout


def test_changed_csv_cell_exits_1_naming_the_column(tmp_path):
    _write_tree(tmp_path / "a", wall_s=1.5, seconds=0.1, err="0.25")
    _write_tree(tmp_path / "b", wall_s=9.0, seconds=0.1, err="0.250")
    proc = _run(tmp_path / "a", tmp_path / "b")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| summary.csv"))
    assert "| differs | err50_rad (rows 0) |" in row
    assert "wall_s" in row.split("|")[5]  # exempt column, listed apart
