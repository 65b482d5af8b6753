"""The .test workflow through a real SLURM cluster (``--executor slurm`` with
profiles/slurm; the plugin polls ``sacct``), against the same workflow on
local cores (the session's run, conftest.test_workflow_run): the same output files with the same data (actions, states,
metrics: exactly; measured wall times aside), and every SLURM job COMPLETED
in ``sacct``.

Needs a cluster with accounting: ``sudo scripts/local_slurm.sh up`` brings one
up on this machine (.ci/run does, as root), and the ``slurm`` extra
(snakemake-executor-plugin-slurm). Without them the test is skipped, unless
MOCAP_REFINE_REQUIRE_SLURM=1 (CI), which turns a missing cluster into a failure.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from workflow_run import copy_workflow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TIMEOUT_S = 1500


def _cluster_problem() -> str | None:
    """Why the test cannot run here, or None."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    for tool in ("sbatch", "sinfo", "sacct"):
        if shutil.which(tool) is None:
            return f"{tool} not found: no SLURM here (sudo scripts/local_slurm.sh up)"
    states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if states.returncode != 0 or "idle" not in states.stdout.split():
        return f"no idle SLURM node (sinfo: {states.stdout.strip() or states.stderr.strip()})"
    acct = subprocess.run(["sacct", "-n", "-X", "-S", "now-1minutes"], capture_output=True, text=True)
    if acct.returncode != 0:
        return f"SLURM accounting is not available (sacct: {acct.stderr.strip()})"
    return None


def _require_cluster():
    problem = _cluster_problem()
    if problem is None:
        return
    if os.environ.get("MOCAP_REFINE_REQUIRE_SLURM") == "1":
        pytest.fail(f"MOCAP_REFINE_REQUIRE_SLURM=1 but {problem}")
    pytest.skip(problem)


def _snakemake(cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run Snakemake in its own process group (on timeout the whole group is
    killed: SIGTERM alone leaves Snakemake waiting for its jobs)."""
    env = dict(os.environ, PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""))
    start = time.monotonic()
    proc = subprocess.Popen([str(BIN / "snakemake"), *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"snakemake {' '.join(args)} did not finish in {TIMEOUT_S} s:\n{out[-5000:]}")
    wall = time.monotonic() - start
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, "")
    assert proc.returncode == 0, f"snakemake {' '.join(args)} failed:\n{out[-8000:]}"
    return done, wall


# Measured wall times (and what is derived from them) differ between any two
# runs; everything else of an output is compared exactly.
TIMING = ("wall_s", "replay_s", "cost_replays", "seconds")  # seconds: a history's wall clock
# Rendered from the compared tables, with their wall times: checked present only.
RENDERED_WITH_TIMES = (".md", ".html", "summary.png")


def _content(path: Path):
    """What of an output must be the same in every run: an HDF5 file's
    datasets (bytes) and attributes but the timings, a CSV's cells but the
    timing columns, any other file's bytes."""
    if path.suffix == ".h5":
        import h5py

        items = {}
        with h5py.File(path, "r") as f:
            def visit(name, obj):
                if name.rsplit("/", 1)[-1] in TIMING:
                    return
                attrs = {k: repr(v) for k, v in obj.attrs.items() if k not in TIMING}
                data = obj[()].tobytes() if isinstance(obj, h5py.Dataset) else None
                items[name] = (attrs, data)
            items["/"] = ({k: repr(v) for k, v in f.attrs.items() if k not in TIMING}, None)
            f.visititems(visit)
        return hashlib.sha256(repr(sorted(items.items())).encode()).hexdigest()
    if path.suffix == ".csv":
        import pandas as pd

        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        return hashlib.sha256(table.drop(columns=[c for c in TIMING if c in table]).to_csv().encode()).hexdigest()
    if path.name.endswith(RENDERED_WITH_TIMES):
        return "present"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _digests(results: Path) -> dict[str, str]:
    return {str(p.relative_to(results)): _content(p) for p in sorted(results.rglob("*")) if p.is_file()}


@pytest.mark.slurm
@pytest.mark.slow
def test_test_workflow_on_slurm_matches_local_cores_and_every_job_completes(request, tmp_path):
    _require_cluster()
    node_cpus = int(subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True,
                                   check=True).stdout.split()[0])
    # The local run: the session's (conftest.test_workflow_run, --cores 2),
    # its results as it left them.
    local = request.getfixturevalue("test_workflow_run")
    if local.cores > node_cpus:
        pytest.skip(f"the node has {node_cpus} CPUs, the local run used {local.cores} cores")
    local_wall = local.wall_s

    cluster = copy_workflow(tmp_path / "slurm")
    # The profile as shipped; --cores: the local run's (the profile's 4 would
    # ask a 2-CPU node for more than it has; mpc's output depends on its
    # thread count); status checks start after 2 s instead of the plugin's
    # 40 (fine for a one-node test cluster).
    proc, slurm_wall = _snakemake(cluster, "--profile", "profiles/slurm", "--directory", ".test",
                                  "--cores", str(local.cores), "--slurm-init-seconds-before-status-checks", "2")
    job_ids = re.findall(r"has been submitted with SLURM jobid (\d+)", proc.stdout)
    assert job_ids, proc.stdout[-3000:]

    local_files = _digests(local.snapshot)
    cluster_files = _digests(cluster / ".test" / "results")
    assert local_files, "the local run wrote nothing"
    assert sorted(cluster_files) == sorted(local_files)
    differ = [name for name in local_files if cluster_files[name] != local_files[name]]
    assert not differ, f"outputs differ between SLURM and local cores: {differ}"

    fields = "JobID,JobName%60,State,ExitCode,Elapsed,AllocCPUS,ReqMem,Timelimit"
    acct = subprocess.run(["sacct", "-X", "-n", "-P", "-j", ",".join(job_ids), f"--format={fields}"],
                          capture_output=True, text=True, check=True)
    rows = [line.split("|") for line in acct.stdout.splitlines() if line.strip()]
    assert sorted(r[0] for r in rows) == sorted(job_ids), acct.stdout
    assert all(r[2] == "COMPLETED" and r[3] == "0:0" for r in rows), acct.stdout
    # Short per-clip jobs went as groups: fewer cluster jobs than workflow jobs.
    n_rules_run = len(set(re.findall(r"^\s*Job (\d+): ", proc.stdout, flags=re.M)))
    assert len(job_ids) < n_rules_run, (len(job_ids), n_rules_run)

    summary = {
        "local_cores": local.cores, "node_cpus": node_cpus, "local_wall_s": round(local_wall, 1), "slurm_wall_s": round(slurm_wall, 1),
        "slurm_jobs": len(job_ids), "output_files": len(local_files),
        "sacct": [dict(zip(fields.replace("%60", "").split(","), r)) for r in rows],
    }
    print(json.dumps(summary, indent=1))
    out = os.environ.get("MOCAP_REFINE_SLURM_SUMMARY")
    if out:
        Path(out).write_text(json.dumps(summary, indent=1) + "\n")
