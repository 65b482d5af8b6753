"""Per-rule cluster resources from measured runs: writes workflow/resources.yaml.

Reads the Snakemake benchmark files (``benchmark:`` of every rule: CPU
seconds ``cpu_time``, user + system over all threads, and peak memory
``max_rss`` in MB) of one or more finished runs,
and each clip's length from its ``results/{clip}/reference.h5``. Optionally
also the wall times of docs/results/tracking_*.md (benchmarks/tracking.py:
track and gradient on 22 library clips and variants).

The CPU seconds stand for the wall time a job takes when it has its cores
to itself (the jobs are compute-bound, so wall <= CPU seconds there): on a
shared machine the wall time ``s`` measures the other users' load as much as
the job (a measuring run here: invdyn 295 s wall for 19 s of CPU).

Per rule, and per method for the rules with a ``{method}`` wildcard, it keeps
the largest seconds per second of clip (rules with a ``{clip}``
wildcard; the measured figure includes Python start-up, so short clips give
the largest ratio) or per clip of the run (the gathering rules), and the
largest peak memory. ``mocap_refine.resources`` turns these into ``runtime``
(minutes) and ``mem_mb`` with a safety factor; workflow/rules/common.smk
gives them to every rule.

    python benchmarks/rule_resources.py /tmp/run --tracking-table docs/results/tracking_*.md --write

A rule added later is measured on its own and merged in (``--only``; the
other rules keep their figures), e.g. plot_replays from the .test run
(``snakemake --cores 2 --directory .test``):

    python benchmarks/rule_resources.py .test --only plot_replays --write

The figures in the repository come from the fresh full run of
docs/results/full_run.md (``snakemake --cores 2 all`` on a clean clone, in
/tmp/fullrun), with the tracking tables' wall times:

    python benchmarks/rule_resources.py /tmp/fullrun --tracking-table docs/results/tracking_{test,tune,variants}.md \
        --only import_clip prepare actions evaluate comparison summary plot_clip plot_replays plot_summary animate \
        --write

and, for the rules and methods the default run does not have (gains, gradient's
evaluate and animate), from a run of every method on walk (30 Hz) and
dance_a (60 Hz):

    snakemake --cores 2 -k all results/walk/gains/track.h5 results/dance_a/gains/track.h5 \
        --config 'clips=["walk","dance_a"]' 'methods=["baseline","feedback","gradient","mpc","invdyn","track"]'
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

import h5py
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "workflow" / "resources.yaml"


def benchmark_patterns(rules_dir: Path) -> dict[str, re.Pattern]:
    """rule name -> regex of its benchmark path (from the rules' own
    ``benchmark:`` lines), with named groups for its wildcards."""
    patterns = {}
    for smk in sorted(rules_dir.glob("*.smk")):
        text = smk.read_text()
        for m in re.finditer(r'^rule (\w+):\n(.*?)(?=^rule |\Z)', text, flags=re.M | re.S):
            b = re.search(r'^    benchmark:\n        "([^"]+)"', m.group(2), flags=re.M)
            if b:
                regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(b.group(1)))
                patterns[m.group(1)] = re.compile(regex + "$")
    return patterns


def clip_seconds(reference_h5: Path) -> float:
    """Length of a prepared clip in seconds: frames x frame_dt."""
    with h5py.File(reference_h5, "r") as f:
        return float(f["qpos"].shape[0] * f.attrs["frame_dt"])


def measured_rows(run_dirs: list[Path], patterns: dict[str, re.Pattern]) -> pd.DataFrame:
    """One row per benchmark file: rule, method ('*' for none), clip, s, max_rss_mb, clip_s, clips_in_run."""
    rows = []
    for run in run_dirs:
        clips_in_run = len([p for p in (run / "results").glob("*/reference.h5")])
        for tsv in sorted(run.glob("benchmarks/out/**/*.tsv")):
            rel = str(tsv.relative_to(run))
            # Fixed paths first: gather/summary.tsv is not clip 'summary' of gather/{clip}.tsv.
            for rule, pattern in sorted(patterns.items(), key=lambda kv: kv[1].groups):
                m = pattern.match(rel)
                if not m:
                    continue
                wc = m.groupdict()
                bench = pd.read_csv(tsv, sep="\t")
                clip = wc.get("clip")
                ref = run / "results" / clip / "reference.h5" if clip else None
                rows.append({
                    "rule": rule, "method": wc.get("method", "*"), "clip": clip or "*",
                    "s": float(bench["cpu_time"].max()), "max_rss_mb": float(bench["max_rss"].max()),
                    "clip_s": clip_seconds(ref) if ref is not None and ref.exists() else math.nan,
                    "clips_in_run": clips_in_run,
                })
                break
    return pd.DataFrame(rows)


def tracking_rows(tables: list[Path]) -> pd.DataFrame:
    """Rows (rule actions) from the markdown tables benchmarks/tracking.py
    renders; only rows of a method's defaults (a label such as
    track_former ran other settings than any rule does)."""
    from mocap_refine.methods import METHODS
    rows = []
    for table in tables:
        lines = [ln for ln in table.read_text().splitlines() if ln.startswith("|")]
        if not lines:
            continue
        header = [h.strip() for h in lines[0].strip("|").split("|")]
        if not {"clip", "method", "wall_s", "frames", "frame_dt"} <= set(header):
            continue
        for ln in lines[2:]:
            cells = [c.strip() for c in ln.strip("|").split("|")]
            if len(cells) != len(header):
                continue
            row = dict(zip(header, cells))
            if row["method"] not in METHODS:
                continue
            rows.append({
                "rule": "actions", "method": row["method"], "clip": row["clip"],
                "s": float(row["wall_s"]), "max_rss_mb": math.nan,
                "clip_s": float(row["frames"]) * float(row["frame_dt"]), "clips_in_run": math.nan,
            })
    return pd.DataFrame(rows)


def figures(rows: pd.DataFrame) -> dict:
    """rule -> method -> {s_per_clip_s | s_per_run_clip, max_rss_mb, measured}."""
    out: dict = defaultdict(dict)
    for (rule, method), grp in rows.groupby(["rule", "method"], sort=True):
        entry = {}
        per_clip = grp.dropna(subset=["clip_s"])
        if (grp["clip"] != "*").any() and len(per_clip):
            entry["s_per_clip_s"] = round(float((per_clip["s"] / per_clip["clip_s"]).max()), 3)
        else:
            entry["s_per_run_clip"] = round(float((grp["s"] / grp["clips_in_run"]).max()), 3)
        rss = grp["max_rss_mb"].dropna()
        if len(rss):
            entry["max_rss_mb"] = round(float(rss.max()), 1)
        entry["measured"] = int(len(grp))
        out[rule][method] = entry
    return {rule: dict(methods) for rule, methods in out.items()}


def merged_text(current: str, result: dict, source: str) -> str:
    """The current file with `result`'s figures replaced or added (per rule
    and method: a method the runs did not measure keeps its figures), and a
    header line naming where those rules' figures come from (after the
    current source lines, replacing earlier lines whose rules it covers)."""
    lines = [ln for ln in current.splitlines() if ln.startswith("#")]
    tag = f"#   rules {', '.join(sorted(result))}: "

    def superseded(line: str) -> bool:
        # An earlier "rules ...:" source line whose rules all come from these runs now.
        if not line.startswith("#   rules ") or ": " not in line:
            return False
        return set(line[len("#   rules "):line.index(": ")].split(", ")) <= set(result)

    lines = [ln for ln in lines if not superseded(ln)]
    last_source = max(k for k, ln in enumerate(lines) if ln.startswith("#   "))
    lines.insert(last_source + 1, tag + source)
    merged = yaml.safe_load(current) or {}
    for rule, methods in result.items():
        merged[rule] = {**merged.get(rule, {}), **methods}
    return "\n".join(lines) + "\n" + yaml.safe_dump(merged, sort_keys=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="working directories of finished runs")
    ap.add_argument("--tracking-table", nargs="*", type=Path, default=[],
                    help="docs/results/tracking_*.md tables (wall_s of track and gradient)")
    ap.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(REPO)}")
    ap.add_argument("--only", nargs="+", metavar="RULE",
                    help=f"take only these rules' figures from the runs; every other rule keeps its "
                         f"figures of the current {OUT.relative_to(REPO)} (a rule added since they were measured), "
                         f"and so does a method of these rules that the runs did not measure")
    args = ap.parse_args(argv)

    rows = measured_rows(args.runs, benchmark_patterns(REPO / "workflow" / "rules"))
    if args.tracking_table:
        rows = pd.concat([rows, tracking_rows(args.tracking_table)], ignore_index=True)
    if args.only and not rows.empty:
        rows = rows[rows["rule"].isin(args.only)]
    if rows.empty:
        print("no benchmark files found under <run>/benchmarks/out", file=sys.stderr)
        return 1
    result = figures(rows)
    run_clips = sorted(set(rows.loc[rows["clips_in_run"].notna() & (rows["clip"] != "*"), "clip"]))
    if args.only:
        text = merged_text(OUT.read_text(), result, f"Snakemake benchmark files of {len(args.runs)} run(s), "
                                                    f"clips {', '.join(run_clips)}")
    else:
        text = None
    header = (
        "# Generated by benchmarks/rule_resources.py (do not edit by hand) from\n"
        f"#   Snakemake benchmark files of {len(args.runs)} run(s), clips {', '.join(run_clips)}\n"
        + "".join(f"#   wall times of {p}\n" for p in args.tracking_table)
        + "# s_per_clip_s: largest CPU seconds (tracking tables: wall seconds) per second\n"
        "# of clip; s_per_run_clip: per clip of the run (gathering rules); max_rss_mb:\n"
        "# largest peak memory (MB); measured: jobs. mocap_refine.resources turns these\n"
        "# into each rule's runtime and mem_mb.\n"
    )
    text = text or header + yaml.safe_dump(result, sort_keys=True)
    if args.write:
        OUT.write_text(text)
        print(f"wrote {OUT.relative_to(REPO)}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
