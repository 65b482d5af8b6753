"""The workflow used as a Snakemake module, as ``snakedeploy deploy-workflow``
sets it up: the deployed Snakefile points at this repository's
``workflow/Snakefile``; config, license (and profiles) are copied. Its dry run
plans the whole test configuration, and a real job of it finds its schema and
scripts relative to the module, not to the directory Snakemake runs in."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# What a clone of the repository holds that the workflow needs.
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "environment.yml", "LICENSE", "profiles", ".test")


def _run(cwd: Path, *cmd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_snakedeploy_module_dry_runs_and_runs_a_job(tmp_path):
    source = tmp_path / "mocap-refine"
    source.mkdir()
    for name in WORKFLOW_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, symlinks=True)
        elif (REPO / name).exists():
            shutil.copy2(REPO / name, source / name)
    dest = tmp_path / "deployment"
    _run(tmp_path, str(BIN / "snakedeploy"), "deploy-workflow", str(source), str(dest), "--branch", "main")

    snakefile = dest / "workflow" / "Snakefile"
    text = snakefile.read_text()
    assert "module mocap_refine:" in text and "use rule * from mocap_refine" in text
    # snakedeploy (0.17) writes a local source's Snakefile relative to the
    # source ("workflow/Snakefile"), which Snakemake resolves relative to the
    # deployed Snakefile; a user deploying from a local clone points it at
    # the clone, as here. From GitHub it writes github("owner/repo", ...).
    assert 'snakefile: \n        "workflow/Snakefile"' in text, text
    snakefile.write_text(text.replace('"workflow/Snakefile"', f'"{source / "workflow" / "Snakefile"}"'))
    assert (dest / "config" / "config.yaml").is_file()
    assert (dest / "config" / "README.md").is_file()
    assert (dest / "LICENSE").read_text() == (REPO / "LICENSE").read_text()

    shutil.copytree(REPO / ".test" / "motions", dest / "motions")
    common = ["--configfile", "config/test_config.yaml"]
    dry = _run(dest, str(BIN / "snakemake"), "-n", "--quiet", "rules", *common)
    assert "evaluate" in dry.stdout and "total" in dry.stdout, dry.stdout

    # A real job: schema (common.smk) and script (prepare.py) from the module.
    _run(dest, str(BIN / "snakemake"), "--cores", "1", "results/gen_a/reference.h5", *common)
    assert (dest / "results" / "gen_a" / "reference.h5").is_file()
    assert (dest / "logs" / "prepare" / "gen_a.log").is_file()
    assert not (source / "results").exists(), "outputs belong to the deployment, not the module"
