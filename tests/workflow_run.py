"""Helpers of the tests that run the workflow in a copy of it (the shared
.test run is the fixture conftest.test_workflow_run)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# What a copy of the workflow needs (the catalogue's .test set-up included).
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "environment.yml", ".test", "profiles")
# Cores of the shared run; tests/test_slurm.py gives the cluster run the
# same (mpc's output depends on its thread count).
TEST_RUN_CORES = 2


@dataclass(frozen=True)
class WorkflowRun:
    """One local run of the .test workflow (`snakemake --cores 2 --directory
    .test all` in a copy of the workflow). `workdir` (root/.test: motions,
    results, logs) may be changed by the tests that use it; `snapshot` is
    its results/ as the run left them, never changed."""
    root: Path
    workdir: Path
    snapshot: Path
    cores: int
    wall_s: float


def snakemake_exe() -> Path:
    exe = BIN / "snakemake"
    if not exe.exists():
        pytest.skip("snakemake executable not found")
    return exe


# A run of the checkout's own .test leaves these; a copy starts without them.
RUN_OUTPUTS = ("results", "logs", "benchmarks", ".snakemake")


def copy_workflow(dest: Path) -> Path:
    """The workflow's files (WORKFLOW_FILES) in `dest`, links kept, no run's outputs."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, symlinks=True,
                            ignore=lambda d, names: [n for n in names if Path(d) == REPO / ".test"
                                                     and n in RUN_OUTPUTS])
        else:
            shutil.copy2(src, dest / name)
    return dest


def run_snakemake(root: Path, *args: str, directory: str | None = ".test",
                  timeout: float = 1800) -> subprocess.CompletedProcess:
    """`snakemake [--directory DIR] ARGS` in the workflow copy `root`, with
    this interpreter's environment first on PATH (the jobs' scripts use it)."""
    env = dict(os.environ, PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""))
    cmd = [str(snakemake_exe()), *(["--directory", directory] if directory else []), *args]
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)


def failure_text(proc: subprocess.CompletedProcess, workdir: Path | None = None) -> str:
    """The command, its output's tail and every job log's tail."""
    logs = ""
    if workdir is not None and (workdir / "logs").exists():
        logs = "\n".join(f"--- {p.relative_to(workdir)}\n{p.read_text()[-3000:]}"
                         for p in sorted((workdir / "logs").rglob("*.log")))
    return (f"{' '.join(map(str, proc.args))} failed ({proc.returncode})\n"
            f"{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}\n{logs}")
