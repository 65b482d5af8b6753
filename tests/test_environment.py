"""environment.yml (the conda environment of every rule's `conda:`
directive) lists the same packages as pyproject.toml's runtime dependencies:
a package added to one and not the other fails here, not in a user's
`snakemake --use-conda` run."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    """Normalised distribution name (PEP 503: case, '-', '_' and '.' alike)."""
    return re.sub(r"[-_.]+", "-", Requirement(req).name).lower()


def pyproject_runtime() -> list[str]:
    # tomllib needs Python 3.11; requires-python is 3.10: read the list by hand.
    deps = re.search(r"^dependencies = \[(.*?)^\]", (REPO / "pyproject.toml").read_text(), re.S | re.M)
    assert deps, "pyproject.toml has no [project] dependencies list"
    return re.findall(r'^\s*"([^"]+)"', deps.group(1), flags=re.M)


def environment_pip() -> list[str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    (pip,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    return list(pip)


def test_environment_and_pyproject_list_the_same_packages():
    runtime = pyproject_runtime()
    env = environment_pip()
    assert len(runtime) >= 10 and len(env) >= 10
    names_runtime = sorted(map(_name, runtime))
    names_env = sorted(map(_name, env))
    assert len(set(names_env)) == len(names_env), "environment.yml lists a package twice"
    missing = sorted(set(names_runtime) - set(names_env))
    extra = sorted(set(names_env) - set(names_runtime))
    assert not missing and not extra, (f"environment.yml lacks {missing} (in pyproject.toml's dependencies); "
                                       f"it has {extra} that pyproject.toml's dependencies do not")
    # Not asked by the check, but the same pins keep the two installs alike.
    assert {_name(r): Requirement(r).specifier for r in env} == {_name(r): Requirement(r).specifier
                                                                 for r in runtime}


def test_names_compare_case_insensitively():
    assert _name("PyYAML>=6") == _name("pyyaml") == "pyyaml"
    assert _name("snakemake[reports]>=8.0") == "snakemake"
    assert _name("Jinja2") == "jinja2" and _name("h5py==3.9") == "h5py"
