"""Every command the README (and the pages it sends a newcomer to) shows is
run or checked here, and the README stays short and its links resolve.

Snakemake commands are dry-run (``-n``) in a fresh copy of the workflow, so
their targets, ``--config`` overrides and config validation are checked
without the hours of a full run; ``snakemake --lint`` runs as written.
``mocap-refine`` commands are parsed by the CLI's own parser (``--help``
runs). The set-up and test commands are the ones ``.ci/run`` executes; the
report command is run by tests/test_report_command.py.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Pages whose commands a newcomer is told to run.
COMMAND_PAGES = ("README.md", "config/README.md", "docs/workflow.md")
DOC_PAGES = ("README.md", "config/README.md", *(str(p.relative_to(REPO)) for p in sorted((REPO / "docs").rglob("*.md"))))


def shown_commands(page: str) -> list[list[str]]:
    """The commands in the page's ```bash blocks, split as a shell would
    (comments dropped, `a && b` split into two)."""
    text = (REPO / page).read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            while words:
                cut = words.index("&&") if "&&" in words else len(words)
                commands.append(words[:cut])
                words = words[cut + 1:]
    return commands


def _program(words: list[str]) -> str:
    return Path(words[0]).name


def test_readme_is_short_and_links_resolve():
    assert len((REPO / "README.md").read_bytes()) < 10_000
    broken = []
    for page in DOC_PAGES:
        text = (REPO / page).read_text()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" not in target and not (REPO / page).parent.joinpath(target).exists():
                broken.append(f"{page}: {target}")
        for gone in ("../shared", "design document"):
            assert gone not in text, f"{page} points at {gone!r}, which users of the repository do not have"
    assert not broken, f"links to missing files: {broken}"


def test_setup_and_test_commands_are_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text()
    readme = shown_commands("README.md")
    assert ["python3", "-m", "venv", ".venv"] in readme and "-m venv" in ci
    assert [".venv/bin/pip", "install", "-e", ".[test]"] in readme and "pip install --quiet -e '.[test]'" in ci
    assert [".venv/bin/python", "-m", "pytest", "-q"] in readme and '-m pytest -q' in ci


def test_every_shown_command_is_checked_somewhere():
    """A new command in the docs must be added to one of the checks here."""
    known = {"python3", "pip", "python", "snakemake", "mocap-refine", "local_slurm.sh"}
    for page in COMMAND_PAGES:
        for words in shown_commands(page):
            if words[0] == "sudo":
                words = words[1:]
            assert _program(words) in known, f"{page}: no test runs `{shlex.join(words)}`"


def test_local_slurm_commands_exist():
    """scripts/local_slurm.sh (run by .ci/run around tests/test_slurm.py):
    the pages show only its subcommands, and it parses."""
    script = REPO / "scripts" / "local_slurm.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    usage = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert usage.returncode == 2 and "up|down|status" in usage.stderr
    for page in COMMAND_PAGES:
        for words in shown_commands(page):
            words = words[1:] if words[0] == "sudo" else words
            if _program(words) == "local_slurm.sh":
                assert words[0] == "scripts/local_slurm.sh" and words[1:] in (["up"], ["down"], ["status"]), words
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/local_slurm.sh up" in ci and "scripts/local_slurm.sh down" in ci


def test_mocap_refine_commands_parse():
    from mocap_refine.cli import build_parser

    parser = build_parser()
    for page in COMMAND_PAGES:
        for words in shown_commands(page):
            if _program(words) != "mocap-refine":
                continue
            if words[1:] == ["--help"]:
                proc = subprocess.run([str(Path(sys.executable).parent / "mocap-refine"), "--help"],
                                      capture_output=True, text=True)
                assert proc.returncode == 0 and "usage" in proc.stdout
            else:
                parser.parse_args(words[1:])


def _workflow_copy(work: Path) -> Path:
    for name in ("Snakefile", "environment.yml"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, work / name)
    for name in ("workflow", "config", ".test", "profiles"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, work / name, symlinks=True)
    (work / "motions").mkdir()
    return work


# Dry runs at once, each in its own copy of the workflow (a dry run is
# mostly Snakemake's start-up and DAG on one core).
DRY_RUN_WORKERS = 2


def _dry_runs(work: Path, commands: list) -> list:
    """Run `commands` [(page, words, args)] one after the other in `work`:
    [(page, words, failure text or None)]."""
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    out = []
    for page, words, args in commands:
        proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), *args], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600)
        out.append((page, words, None if proc.returncode == 0 else proc.stderr[-3000:]))
    return out


@pytest.mark.slow
def test_snakemake_commands_dry_run(tmp_path):
    """Every snakemake command the pages show, dry-run; a command line shown
    on two pages runs once (the same arguments in the same copy give the
    same answer)."""
    from concurrent.futures import ThreadPoolExecutor

    commands = {}
    for page in COMMAND_PAGES:
        for words in shown_commands(page):
            if _program(words) != "snakemake" or "--report" in words:
                continue
            if "profiles/slurm" in words and sys.version_info < (3, 11):
                continue  # its executor plugin needs Python >= 3.11 (config/README.md says so)
            args = words[1:] if "--lint" in words or "-n" in words else ["-n", *words[1:]]
            commands.setdefault(tuple(args), (page, words, args))
    assert len(commands) >= 5
    works = []
    for k in range(DRY_RUN_WORKERS):
        (tmp_path / f"copy{k}").mkdir()
        works.append(_workflow_copy(tmp_path / f"copy{k}"))
    shares = [list(commands.values())[k::DRY_RUN_WORKERS] for k in range(DRY_RUN_WORKERS)]
    with ThreadPoolExecutor(max_workers=DRY_RUN_WORKERS) as pool:
        done = [r for rs in pool.map(_dry_runs, works, shares) for r in rs]
    assert len(done) == len(commands)
    for page, words, failure in done:
        assert failure is None, f"{page}: `{shlex.join(words)}` failed:\n{failure}"
    for work in works:
        assert not any((work / "results").rglob("*.h5")), "a dry run wrote results"
