"""`snakemake --report results/report.html`, exactly as README.md gives it,
works after any run (issue 13): the report dependency is declared and
installed, and the report covers the clips and methods of the last run
(results/last_run.yaml, written by rule summary) without --config.

Unit part: mocap_refine.run_record and the declared dependency. Slow part:
the workflow in a temporary copy, run on a subset, then the README command.
"""

from __future__ import annotations

import base64
import importlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from mocap_refine import run_record
from mocap_refine.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
REPORT_CMD = ["--report", "results/report.html"]  # README.md: `snakemake --report results/report.html`


# ---------------------------------------------------------------- dependency

def _snakemake_requirement(lines) -> Requirement:
    (req,) = [Requirement(s) for s in lines if Requirement(s).name == "snakemake"]
    return req


def test_report_dependency_is_declared_and_importable():
    # pyproject.toml's dependencies (tomllib needs Python 3.11; requires-python is 3.10).
    deps = re.search(r"^dependencies = \[(.*?)^\]", (REPO / "pyproject.toml").read_text(), re.S | re.M)
    assert "reports" in _snakemake_requirement(re.findall(r'"([^"]+)"', deps.group(1))).extras
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    (pip,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert "reports" in _snakemake_requirement(pip).extras
    # The installed Snakemake has the extra, and what it pulls in imports.
    extra_reqs = [Requirement(r) for r in importlib.metadata.requires("snakemake") or []]
    reports = [r for r in extra_reqs if r.marker is not None and r.marker.evaluate({"extra": "reports"})]
    assert reports, "the installed snakemake has no 'reports' extra"
    for req in reports:
        importlib.metadata.distribution(req.name)
    importlib.import_module("pygments")  # what `snakemake --report` asks for


def test_readme_gives_the_report_command():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Reports"):]
    assert "snakemake --report results/report.html" in section
    assert run_record.REPORT_COMMAND == "snakemake --report results/report.html"


# ---------------------------------------------------------------- run record

def test_record_round_trip_and_bad_records(tmp_path):
    path = tmp_path / "results" / "last_run.yaml"
    assert run_record.read_record(path) is None
    run_record.write_record(path, ["gen_a", "walk"], ["baseline", "invdyn"])
    assert run_record.read_record(path) == {"clips": ["gen_a", "walk"], "methods": ["baseline", "invdyn"]}
    path.write_text("clips: [a]\n")
    with pytest.raises(ConfigError, match="last_run.yaml"):
        run_record.read_record(path)
    path.write_text("clips: [a\n")
    with pytest.raises(ConfigError, match="not YAML"):
        run_record.read_record(path)


def test_report_invocation_is_recognised():
    exe = "snakemake"
    assert run_record.is_report_invocation([exe, "--report", "results/report.html"])
    assert run_record.is_report_invocation([exe, "--report=results/report.html", "--configfile", "c.yaml"])
    assert run_record.is_report_invocation([exe, "--reporter", "html", "--report-html-path", "r.html"])
    assert not run_record.is_report_invocation([exe, "--cores", "8", "all"])
    assert not run_record.is_report_invocation([exe, "all", "--report", "r.html", "--report-after-run"])
    assert not run_record.is_report_invocation([exe, "--report-stylesheet", "s.css", "all"])


def test_selection_follows_the_record_and_names_the_command():
    record = {"clips": ["gen_a"], "methods": ["baseline", "invdyn"]}
    assert run_record.report_selection(None, {}) is None
    assert run_record.report_selection(record, {}) == (["gen_a"], ["baseline", "invdyn"])
    # Same sets on the command line: the recorded order (the summary's) is kept.
    assert run_record.report_selection(record, {"methods": ["invdyn", "baseline"]}) == (
        ["gen_a"], ["baseline", "invdyn"])
    with pytest.raises(ConfigError) as err:
        run_record.report_selection(record, {"clips": ["gen_b"]})
    text = str(err.value)
    assert "\n" not in text
    assert """`snakemake --cores 8 all --config 'clips=["gen_b"]' 'methods=["baseline","invdyn"]'` first""" in text

    msg = run_record.missing_files_message(["results/x/a.png", "results/x/b.png"], ["x"], ["baseline"], True)
    assert "results/x/a.png and 1 more" in msg
    assert """run `snakemake --cores 8 all --config 'clips=["x"]' 'methods=["baseline"]'` first""" in msg
    assert "run `snakemake --cores 8 all` first" in run_record.missing_files_message(["a"], ["x"], ["m"], False)


# ---------------------------------------------------------------- Snakemake

def _snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "snakemake"
    if not exe.exists():
        pytest.skip("snakemake executable not found")
    env = dict(os.environ, PATH=str(exe.parent) + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run([str(exe), *args], cwd=work, env=env, capture_output=True, text=True, timeout=900)


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_report_after_a_subset_run_needs_no_config(tmp_path):
    from mocap_refine.generate import write_generated_clip

    for name in ("Snakefile", "environment.yml"):
        shutil.copy2(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "workflow", tmp_path / "workflow")
    shutil.copytree(REPO / "config", tmp_path / "config")
    for seed, clip in enumerate(("gen_a", "gen_b")):
        write_generated_clip(tmp_path / "motions" / f"{clip}.txt", seconds=0.4, frame_dt=1 / 30, seed=seed)
    report = tmp_path / "results" / "report.html"

    # Nothing run yet: one sentence with the command to run.
    proc = _snakemake(tmp_path, *REPORT_CMD)
    assert proc.returncode != 0
    assert "run `snakemake --cores 8 all` first, then `snakemake --report results/report.html`" in proc.stderr
    assert not report.exists()

    # A subset: one clip, two of the test config's (small) methods.
    methods = ["baseline", "invdyn"]
    _ok(_snakemake(tmp_path, "--cores", "2", "all", "--configfile", "config/test_config.yaml", "--config",
                   'clips=["gen_a"]', "methods=[" + ",".join(f'"{m}"' for m in methods) + "]"))
    assert run_record.read_record(tmp_path / run_record.RECORD_PATH) == {"clips": ["gen_a"], "methods": methods}

    # The README's command, no --config, no --configfile.
    _ok(_snakemake(tmp_path, *REPORT_CMD))
    assert report.is_file()
    page = report.read_text()
    assert "Clips: [&#39;gen_a&#39;]" in page or "Clips: ['gen_a']" in page
    embedded = {name: base64.b64decode(data) for name, data in re.findall(
        r"data:[\w/+.-]+;charset=[\w-]+;filename=([\w.-]+);base64,([A-Za-z0-9+/=]+)", page)}
    assert embedded["comparison.png"] == (tmp_path / "results" / "gen_a" / "comparison.png").read_bytes()
    assert embedded["summary.png"] == (tmp_path / "results" / "summary.png").read_bytes()
    # The clip's replays at key frames are embedded; the animations are not (files the caption names).
    assert embedded["replays.png"] == (tmp_path / "results" / "gen_a" / "replays.png").read_bytes()
    assert not [name for name in embedded if name.endswith((".gif", "_replay.html"))]
    assert "results/gen_a/invdyn.gif" in page
    assert "gen_b" not in page

    # --config naming another run: the command that makes it, one sentence.
    report.unlink()
    proc = _snakemake(tmp_path, *REPORT_CMD, "--config", 'clips=["gen_b"]')
    assert proc.returncode != 0
    assert ("""run `snakemake --cores 8 all --config 'clips=["gen_b"]' 'methods=["baseline","invdyn"]'` first"""
            in proc.stderr)
    assert not report.exists()
