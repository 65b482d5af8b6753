"""The workflow follows the snakemake-workflows catalogue's conventions:
snakefmt-formatted rules, a clean ``snakemake --lint``, a ``message:`` naming
the clip and the method on every rule, and ``workflow/Snakefile`` as the entry
point (the top-level Snakefile only includes it)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _rule_files() -> list[Path]:
    return [REPO / "Snakefile", REPO / "workflow" / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]


def test_snakefmt_check_is_clean():
    proc = _run(str(BIN / "snakefmt"), "--check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakemake_lint_is_clean():
    proc = _run(str(BIN / "snakemake"), "--lint")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Congratulations, your workflow is in a good condition" in out, out


def _rules(text: str) -> list[tuple[str, str]]:
    """(name, body) of every rule in a Snakefile's text."""
    starts = list(re.finditer(r"^rule (\w+):\n", text, flags=re.M))
    bodies = []
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        bodies.append((m.group(1), text[m.end() : end]))
    return bodies


def test_every_rule_has_a_message_naming_clip_and_method():
    seen = 0
    for path in _rule_files():
        for name, body in _rules(path.read_text()):
            seen += 1
            m = re.search(r"^    message:\n        (.+)$", body, flags=re.M)
            assert m, f"{path.relative_to(REPO)}: rule {name} has no message:"
            message = m.group(1)
            assert "clip" in message and "method" in message, (
                f"{path.relative_to(REPO)}: rule {name}'s message {message} does not name clip and method"
            )
    assert seen >= 10


def test_top_level_snakefile_only_includes_the_workflow():
    code = [
        line
        for line in (REPO / "Snakefile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert code[0] == 'include: "workflow/Snakefile"'
    # include: does not carry the included file's default target over.
    assert code[1:] == ['workflow.default_target = "all"']


@pytest.mark.parametrize("snakefile", ["Snakefile", "workflow/Snakefile"])
def test_both_entry_points_plan_the_same_jobs(snakefile):
    proc = _run(str(BIN / "snakemake"), "-s", snakefile, "-n", "--forceall", "--quiet", "rules")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # The default target (rule all) of the default config: 15 clips, 5 methods
    # (--forceall: whatever results/ already holds).
    assert re.search(r"^evaluate\s+75$", out, flags=re.M), out
    assert re.search(r"^all\s+1$", out, flags=re.M), out


def test_dot_test_holds_the_test_config_and_its_generated_clips(tmp_path):
    """.test/ (the catalogue's test set-up) runs config/test_config.yaml on
    clips that are the generator's output for the seeds the tests use."""
    import json

    import numpy as np
    import yaml

    from mocap_refine.generate import write_generated_clip

    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    assert config == yaml.safe_load((REPO / "config" / "test_config.yaml").read_text())
    for seed, clip in enumerate(config["clips"]):
        write_generated_clip(tmp_path / f"{clip}.txt", seconds=0.5, frame_dt=1 / 30, seed=seed)
        fresh = json.loads((tmp_path / f"{clip}.txt").read_text())
        stored = json.loads((REPO / ".test" / "motions" / f"{clip}.txt").read_text())
        assert stored["Loop"] == fresh["Loop"]
        np.testing.assert_allclose(np.array(stored["Frames"]), np.array(fresh["Frames"]), rtol=0, atol=1e-9)
