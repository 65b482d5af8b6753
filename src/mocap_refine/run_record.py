"""Which clips and methods the results/ folder holds, for the report.

Rule ``summary`` (workflow/rules/gather.smk) writes ``results/last_run.yaml``
next to ``results/summary.csv``: the clips and methods of that table, i.e. of
the last ``snakemake all`` (with whatever ``--config`` it was given).

``snakemake --report results/report.html`` (workflow/rules/common.smk) builds
the report for those clips and methods instead of the configured ones, so the
same command works after a run on a subset. Without a record (nothing run
yet) it uses the configuration. Either way, when a file the report needs is
missing it stops with one sentence naming the command to run first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import yaml

from mocap_refine.config import ConfigError
from mocap_refine.io import atomic_path

__all__ = [
    "RECORD_PATH",
    "REPORT_COMMAND",
    "write_record",
    "read_record",
    "is_report_invocation",
    "report_selection",
    "run_command",
    "missing_files_message",
]

RECORD_PATH = "results/last_run.yaml"
REPORT_COMMAND = "snakemake --report results/report.html"
_KEYS = ("clips", "methods")


def write_record(path: str | Path, clips: Sequence[str], methods: Sequence[str]) -> None:
    """Write the clips and methods of a finished summary table."""
    header = (
        "# Written by rule summary with results/summary.csv: the clips and methods\n"
        f"# of the last `snakemake all`. `{REPORT_COMMAND}` reports these.\n"
    )
    body = yaml.safe_dump({"clips": [str(c) for c in clips], "methods": [str(m) for m in methods]},
                          default_flow_style=None, sort_keys=False)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(header + body)


def read_record(path: str | Path = RECORD_PATH) -> dict | None:
    """{"clips": [...], "methods": [...]} from `path`, None when it does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not YAML ({err}); delete it and run `snakemake --cores 8 all`") from None
    ok = isinstance(data, dict) and all(
        isinstance(data.get(k), list) and data[k] and all(isinstance(v, str) for v in data[k]) for k in _KEYS)
    if not ok:
        raise ConfigError(f"{path}: expected non-empty lists 'clips' and 'methods'; "
                          "delete it and run `snakemake --cores 8 all`")
    return {k: list(data[k]) for k in _KEYS}


def is_report_invocation(argv: Sequence[str]) -> bool:
    """True for a Snakemake command line that only builds a report
    (`--report`/`--reporter`, not `--report-after-run`, which reports the run
    it makes)."""
    args = list(argv[1:])
    if any(a == "--report-after-run" for a in args):
        return False
    return any(a in ("--report", "--reporter") or a.startswith(("--report=", "--reporter="))
               for a in args)


def _flow(values: Iterable[str]) -> str:
    return json.dumps(list(values), separators=(",", ":"))


def run_command(clips: Sequence[str] | None = None, methods: Sequence[str] | None = None) -> str:
    """The `snakemake all` command for these clips and methods (None: configured)."""
    cmd = "snakemake --cores 8 all"
    given = [f"'{k}={_flow(v)}'" for k, v in (("clips", clips), ("methods", methods)) if v is not None]
    return cmd + (" --config " + " ".join(given) if given else "")


def report_selection(record: Mapping | None, cli_config: Mapping) -> tuple[list, list] | None:
    """(clips, methods) the report covers: the recorded run's, or None (no
    record: the configured ones).

    `record` is what :func:`read_record` returned, `cli_config` the values
    given with `--config`; clips or methods there that differ from the
    record's (as sets) raise ConfigError saying what to run.
    """
    if record is None:
        return None
    for key in _KEYS:
        if key in cli_config and sorted(map(str, cli_config[key])) != sorted(record[key]):
            want = {k: list(cli_config[k]) if k in cli_config else record[k] for k in _KEYS}
            raise ConfigError(
                f"results/ holds the last run of clips {_flow(record['clips'])} and methods "
                f"{_flow(record['methods'])} ({RECORD_PATH}), not {key} {_flow(cli_config[key])}: run "
                f"`{run_command(want['clips'], want['methods'])}` first, or build the report "
                f"without --config to report the last run (`{REPORT_COMMAND}`).")
    return list(record["clips"]), list(record["methods"])


def missing_files_message(missing: Sequence[str], clips: Sequence[str], methods: Sequence[str],
                          explicit: bool) -> str:
    """One sentence: which files the report lacks and what to run first.
    `explicit`: name the clips and methods in the command (else the
    configured ones are meant)."""
    more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
    if explicit:
        what, cmd = f"of clips {_flow(clips)} and methods {_flow(methods)} ", run_command(clips, methods)
    else:
        what, cmd = "of the configured clips and methods ", run_command()
    return (f"The report {what}needs results that do not exist yet ({missing[0]}{more}): "
            f"run `{cmd}` first, then `{REPORT_COMMAND}`.")
