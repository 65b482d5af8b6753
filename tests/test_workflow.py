"""End-to-end test of the Snakemake workflow in a temporary copy.

The session's full run of the .test workflow (config/test_config.yaml on
its two short generated clips; conftest.test_workflow_run), then:
every documented output exists with its datasets and columns; a second run has
nothing to do; changing one method's parameters reruns only that method (and
the gathered tables); an unknown clip or method stops with a clear message;
touching or editing one clip reruns only that clip's jobs; one method's target
runs on its own in a fresh directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from workflow_run import failure_text, run_snakemake

REPO = Path(__file__).resolve().parents[1]
CLIPS = ("gen_a", "gen_b")
METRIC_COLUMNS = [
    "clip", "method", "status", "frames", "frame_dt", "physics_dt", "wall_s",
    "cost_replays", "single_step_err_rad", "err50_rad", "err_full_rad", "root_drift50_m",
    "root_drift_end_m", "root_rot_err50_deg", "reward_mean", "fall_frame", "fall_reason",
    "tracked_fraction", "saturated_fraction",
]
N_ACTUATED = 28
N_JOINTS = 12

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Snakemake on the test configuration in `workdir`: the shared run's
    .test folder (run from its workflow copy with --directory .test) or a
    fresh copy of the workflow (_copy_workflow)."""
    if workdir.name == ".test":
        proc = run_snakemake(workdir.parent, *args)
    else:
        proc = run_snakemake(workdir, "--configfile", "config/test_config.yaml", *args, directory=None)
    if check and proc.returncode != 0:
        raise AssertionError(failure_text(proc, workdir))
    return proc


def planned_outputs(workdir: Path, *args: str) -> set[str]:
    """Output files of the jobs a run would execute (``--summary``: its last
    column says "update pending" for those; a dry run's job lines show each
    rule's ``message:`` instead of its outputs)."""
    proc = snakemake(workdir, "--summary", *args)
    outputs: set[str] = set()
    for line in proc.stdout.splitlines():
        fields = line.split("\t")
        if len(fields) > 2 and fields[-1] == "update pending":
            outputs.add(fields[0])
    return outputs


def nothing_to_do(workdir: Path) -> bool:
    proc = snakemake(workdir, "-n")
    return "Nothing to be done" in proc.stdout + proc.stderr


def _copy_workflow(work: Path) -> Path:
    """The workflow's files in `work`, with an empty motions/ folder."""
    shutil.copy2(REPO / "Snakefile", work / "Snakefile")
    shutil.copy2(REPO / "environment.yml", work / "environment.yml")
    shutil.copytree(REPO / "workflow", work / "workflow")
    shutil.copytree(REPO / "config", work / "config")
    (work / "motions").mkdir()
    return work


@pytest.fixture(scope="module")
def workdir(test_workflow_run) -> Path:
    """The session's .test run (conftest.test_workflow_run: every method on
    gen_a and gen_b, clips checked unchanged by it); these tests rerun parts
    of it in place."""
    return test_workflow_run.workdir


def configured_methods(workdir: Path) -> list[str]:
    import yaml

    # The .test folder's config/config.yaml is config/test_config.yaml (a link).
    name = "config.yaml" if workdir.name == ".test" else "test_config.yaml"
    return yaml.safe_load((workdir / "config" / name).read_text())["methods"]


def test_outputs_have_documented_datasets_and_columns(workdir):
    methods = configured_methods(workdir)
    for clip in CLIPS:
        base = workdir / "results" / clip
        assert (base / "reference.h5").is_file()
        assert (base / "diagnostics.csv").is_file()
        assert len(pd.read_csv(base / "diagnostics.csv")) > 0
        for method in methods:
            assert (base / "actions" / f"{method}.h5").is_file()
            with h5py.File(base / f"{method}.h5", "r") as f:
                actions = f["/actions"][()]
                T = actions.shape[0]
                assert actions.shape == (T, N_ACTUATED) and T >= 1
                assert np.all(np.abs(actions) <= 1.0 + 1e-12)
                assert f["/torques"].shape == (T, N_ACTUATED)
                ref_qpos = f["/reference/qpos"]
                ref_qvel = f["/reference/qvel"]
                assert ref_qpos.shape[0] == T + 1
                assert ref_qvel.shape == (T + 1, 6 + N_ACTUATED)
                assert f["/replay/qpos"].shape[1] == ref_qpos.shape[1]
                assert f["/replay/qvel"].shape[1] == ref_qvel.shape[1]
                assert f["/replay/joint_err"].shape == (T + 1, N_JOINTS)
                assert f["/replay/root_err"].shape[0] == T + 1
                assert f["/replay/root_rot_err"].shape == (T + 1,)
                assert f["/replay/root_rot_err"].attrs["units"] == "deg"
                assert f["/replay/reward"].ndim == 1
                attrs = dict(f.attrs)
                assert attrs["clip"] == clip
                assert attrs["method"] == method
                for metric in ("err50_rad", "err_full_rad", "root_drift50_m", "fall_frame", "fall_reason",
                               "root_rot_err50_deg", "cost_replays"):
                    assert metric in attrs, f"attribute {metric} missing in {clip}/{method}.h5"
                # Every method's actions are computed by compute_actions,
                # which measures its cost in replays of the clip.
                assert np.isfinite(attrs["cost_replays"]) and attrs["cost_replays"] > 0
            row = pd.read_csv(base / f"{method}.csv")
            assert set(METRIC_COLUMNS) <= set(row.columns)
            assert len(row) == 1
            assert row.loc[0, "clip"] == clip and row.loc[0, "method"] == method
        comparison = pd.read_csv(base / "comparison.csv")
        assert set(METRIC_COLUMNS) <= set(comparison.columns)
        assert sorted(comparison["method"]) == sorted(methods)
    summary = pd.read_csv(workdir / "results" / "summary.csv")
    assert set(METRIC_COLUMNS) <= set(summary.columns)
    assert len(summary) == len(CLIPS) * len(methods)
    assert set(zip(summary["clip"], summary["method"])) == {
        (c, m) for c in CLIPS for m in methods
    }
    # Every rule leaves a log and a benchmark.
    assert any((workdir / "logs" / "prepare").glob("*.log"))
    assert any((workdir / "benchmarks" / "out" / "evaluate").rglob("*.tsv"))


def test_second_run_has_nothing_to_do(workdir):
    assert nothing_to_do(workdir)


def test_changing_one_method_reruns_only_that_method(workdir):
    methods = configured_methods(workdir)
    assert "feedback" in methods
    outputs = planned_outputs(workdir, "--config", "feedback={alpha: 0.25}")
    expected = {f"results/{c}/actions/feedback.h5" for c in CLIPS}
    expected |= {f"results/{c}/feedback.{ext}" for c in CLIPS for ext in ("h5", "csv")}
    expected |= {f"results/{c}/comparison.csv" for c in CLIPS} | {"results/summary.csv", "results/last_run.yaml"}
    # report.smk: the comparison figures/tables of every clip and the summary ones.
    expected |= {f"results/{c}/comparison.{ext}" for c in CLIPS for ext in ("png", "md", "html")}
    expected |= {f"results/summary.{ext}" for ext in ("png", "md", "html")}
    # The clip's replays at key frames (every method's row) and feedback's animation.
    expected |= {f"results/{c}/replays.png" for c in CLIPS} | {f"results/{c}/feedback.gif" for c in CLIPS}
    assert outputs == expected


def test_unknown_method_or_clip_fails_clearly(workdir):
    proc = snakemake(workdir, "-n", "--config", 'methods=["baseline","nosuch"]', check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "methods" in text and "'nosuch' is not one of" in text

    proc = snakemake(workdir, "-n", "--config", 'clips=["gen_a","nosuch"]', check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "unknown clip 'nosuch'" in text and "motions/nosuch.txt" in text


def test_import_rule_copies_deepmimic_clip(workdir):
    import pybullet_data

    snakemake(workdir, "--cores", "1", "motions/run.txt")
    source = Path(pybullet_data.getDataPath()) / "data" / "motions" / "humanoid3d_run.txt"
    imported = workdir / "motions" / "run.txt"
    assert imported.is_file()

    assert json.loads(imported.read_text()) == json.loads(source.read_text())
    assert not (workdir / "results" / "run").exists(), "importing must not run other jobs"


def _only_clip(outputs: set[str], clip: str) -> None:
    for path in outputs:
        # The summary job also rewrites results/last_run.yaml (the clips and methods it covers).
        assert (path.startswith(f"results/{clip}/") or path.startswith("results/summary.")
                or path == "results/last_run.yaml"), path


def test_touching_or_editing_a_clip_reruns_only_that_clip(workdir):
    from mocap_refine.generate import write_generated_clip

    clip = workdir / "motions" / "gen_a.txt"
    # Touch only: Snakemake (>= 8) compares the recorded content checksum of
    # small input files, so an unchanged file may rerun nothing; whatever it
    # reruns must belong to this clip.
    later = clip.stat().st_mtime + 10
    os.utime(clip, (later, later))
    _only_clip(planned_outputs(workdir), "gen_a")

    # Edit: the clip's jobs rerun, and nothing of the other clip.
    original = clip.read_bytes()
    write_generated_clip(clip, seconds=0.5, frame_dt=1 / 30, seed=7)
    try:
        outputs = planned_outputs(workdir)
    finally:
        # The later tests share this run: the clip's recorded content again
        # (Snakemake compares checksums of small inputs), nothing pending.
        clip.write_bytes(original)
    _only_clip(outputs, "gen_a")
    methods = configured_methods(workdir)
    assert {"results/gen_a/reference.h5", "results/gen_a/diagnostics.csv",
            "results/gen_a/comparison.csv", "results/summary.csv"} <= outputs
    assert {f"results/gen_a/{m}.csv" for m in methods} <= outputs
    assert {f"results/gen_a/actions/{m}.h5" for m in methods} <= outputs
    assert nothing_to_do(workdir)


def test_one_method_target_runs_on_its_own(tmp_path):
    # `snakemake results/{clip}/invdyn.h5` in a fresh directory: only that
    # clip's chain runs (import, prepare, invdyn, its evaluation), no other
    # method, and the result is complete.
    from mocap_refine.generate import write_generated_clip

    work = _copy_workflow(tmp_path)
    for seed, clip in enumerate(CLIPS):
        write_generated_clip(work / "motions" / f"{clip}.txt", seconds=0.3, frame_dt=1 / 30, seed=seed)
    target = "results/gen_a/invdyn.h5"
    planned = planned_outputs(work, "--cores", "2", target)
    assert target in planned and "results/gen_a/actions/invdyn.h5" in planned
    others = {p for p in planned if re.search(r"(baseline|feedback|gradient|mpc|track|gen_b|summary)", p)}
    assert not others, others
    snakemake(work, "--cores", "2", target)
    with h5py.File(work / target) as h5:
        assert h5["actions"].shape[1] == N_ACTUATED
        assert "invdyn" in h5 and "root_wrench" in h5["invdyn"]
    assert not (work / "results" / "gen_a" / "baseline.h5").exists()
    # The controller's gains are built on request from the same chain.
    gains = "results/gen_a/gains/invdyn.h5"
    assert planned_outputs(work, "--cores", "2", gains) == {gains}
    snakemake(work, "--cores", "2", gains)
    with h5py.File(work / gains) as h5:
        assert h5["gains"].shape == (h5["actions"].shape[0], N_ACTUATED, 68)  # 2 nv tangent state


def test_dataset_and_minari_rules(workdir):
    # The dataset of the configured clips (test config: 2 noisy rollouts per
    # clip, gen_b for validation) from the run's invdyn actions: only the
    # gains and the dataset are new jobs; then its Minari export.
    target = "results/dataset/invdyn.h5"
    assert planned_outputs(workdir, "--cores", "2", target) == {
        target, "results/gen_a/gains/invdyn.h5", "results/gen_b/gains/invdyn.h5"}
    snakemake(workdir, "--cores", "2", target, "results/dataset/minari/invdyn")
    with h5py.File(workdir / target) as h5:
        assert [c.decode() for c in h5["split/validation"][()]] == ["gen_b"]
        assert sorted(h5["clips/gen_a/noisy"]) == ["0", "1"] and h5.attrs["method"] == "invdyn"
    assert (workdir / "results/dataset/minari/invdyn/mocap_refine/gen_b/invdyn-v0/data/main_data.hdf5").is_file()
    # A split without a training clip stops before any job, naming the key.
    proc = snakemake(workdir, "-n", target, "--config", "dataset={validation_clips: [gen_a, gen_b]}", check=False)
    assert proc.returncode != 0 and "dataset.validation_clips" in proc.stdout + proc.stderr
    assert "no clip is left to train on" in proc.stdout + proc.stderr
