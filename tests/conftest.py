"""Shared fixtures.

Generated trajectories are cheap (about 0.05 s each) but several test modules
use the same one, so it is built once per session. Tests must not modify the
arrays they get (they are shared); copy first.

The .test workflow (every method on two generated clips) is the slowest
thing the suite does; it runs once per session (:func:`test_workflow_run`)
and the workflow, SLURM and report tests share it.
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from workflow_run import TEST_RUN_CORES, WorkflowRun, copy_workflow, failure_text, run_snakemake

from mocap_refine.generate import generate_trajectory, write_generated_clip
from mocap_refine.model import load_model

# One generated second at 30 Hz: 31 frames, 30 actions, with ground contact
# (the humanoid falls during the second). Seed fixed: deterministic data.
GEN_SECONDS = 1.0
GEN_FRAME_DT = 1.0 / 30.0
GEN_SEED = 0


@pytest.fixture(scope="session")
def gen():
    """Generated(qpos (31, 43), qvel (31, 34), actions (30, 28), ...)."""
    g = generate_trajectory(seconds=GEN_SECONDS, frame_dt=GEN_FRAME_DT, seed=GEN_SEED)
    for a in (g.qpos, g.qvel, g.actions):
        a.setflags(write=False)
    return g


@pytest.fixture(scope="session")
def gen_model(gen):
    """The humanoid with the generator's physics timestep."""
    return load_model(gen.physics_dt)


@pytest.fixture(scope="session")
def gen_clip(tmp_path_factory, gen):
    """The generated trajectory written as a DeepMimic clip file (Y-up)."""
    path = tmp_path_factory.mktemp("gen_clip") / "gen.txt"
    g2 = write_generated_clip(path, seconds=GEN_SECONDS, frame_dt=GEN_FRAME_DT, seed=GEN_SEED)
    # write_generated_clip regenerates; it must be the same trajectory.
    assert np.array_equal(g2.qpos, gen.qpos)
    return path


@pytest.fixture(scope="session")
def model():
    """The humanoid at the default 600 Hz physics rate."""
    return load_model()


# ---------------------------------------------------------------- the .test workflow, run once

@pytest.fixture(scope="session")
def test_workflow_run(tmp_path_factory) -> WorkflowRun:
    """The .test workflow (config/test_config.yaml: every method, two short
    generated clips) run once on local cores, shared by tests/test_workflow.py
    (which then changes and reruns parts of it), tests/test_slurm.py (its
    outputs against a cluster run's: `snapshot`) and the report tests."""
    root = copy_workflow(tmp_path_factory.mktemp("test_workflow_run") / "workflow")
    workdir = root / ".test"
    clips = sorted((workdir / "motions").glob("*.txt"))
    assert clips, ".test/motions has no clips"
    before = {p.name: p.read_bytes() for p in clips}
    start = time.monotonic()
    proc = run_snakemake(root, "--cores", str(TEST_RUN_CORES), "all")
    wall = time.monotonic() - start
    assert proc.returncode == 0, failure_text(proc, workdir)
    assert {p.name: p.read_bytes() for p in clips} == before, "user-supplied clips must never be rewritten"
    snapshot = root.parent / "results_snapshot"
    shutil.copytree(workdir / "results", snapshot)
    return WorkflowRun(root=root, workdir=workdir, snapshot=snapshot, cores=TEST_RUN_CORES, wall_s=wall)


@pytest.fixture(scope="session")
def test_workflow_report(test_workflow_run) -> WorkflowRun:
    """The shared run's `snakemake --report results/report.html` (README's
    command: no --config; the report covers the run's clips and methods)."""
    run = test_workflow_run
    proc = run_snakemake(run.root, "--report", "results/report.html", timeout=900)
    assert proc.returncode == 0, failure_text(proc)
    assert (run.workdir / "results" / "report.html").is_file()
    return run
