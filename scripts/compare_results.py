"""Compare two workflow results trees: are the outputs bit-identical?

Walks DIR_A and DIR_B (e.g. two checkouts' results/ folders after the same
config ran in each) and compares every file present in both:

- HDF5 (.h5, .hdf5): every dataset byte for byte (dtype, shape, raw bytes;
  string and object data value by value) and every attribute of the file,
  its groups and datasets (type and bytes); objects present in one file only
  are differences.
- CSV: column by column, each cell as the exact text written; columns or rows
  present in one file only, or a different column order, are differences.
- Any other file: byte comparison, reported for information only (figures,
  GIFs and HTML pages are rendered and may legitimately differ).

Exempt, because they measure wall time and differ between any two runs
(the same list as tests/test_slurm.py):
    attributes  wall_s, replay_s, cost_replays
    datasets    history/seconds (a method history's wall clock)
    CSV columns wall_s, replay_s, cost_replays, seconds
Differences in exempt items are listed (column "exempt differences") but do
not count. `--also-exempt NAME` (repeatable) adds attribute/column names or
dataset paths (a path matches its full name or its last components).

Exit status 1 when any HDF5 or CSV file present in both trees differs in a
non-exempt item (with --missing-fails also when an HDF5/CSV file is present
in one tree only), else 0. Prints a per-file summary table (Markdown).

    .venv/bin/python scripts/compare_results.py /tmp/before/results /tmp/after/results
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

TIMING_ATTRS = ("wall_s", "replay_s", "cost_replays")
TIMING_DATASETS = ("history/seconds",)
TIMING_COLUMNS = ("wall_s", "replay_s", "cost_replays", "seconds")
H5_SUFFIXES = (".h5", ".hdf5")


@dataclass
class FileResult:
    path: str
    kind: str  # h5 | csv | other
    status: str  # identical | differs | only in A | only in B | bytes identical | bytes differ | unreadable
    diffs: list[str] = field(default_factory=list)
    exempt: list[str] = field(default_factory=list)

    @property
    def counts(self) -> bool:
        """Whether this result makes the comparison fail."""
        return self.kind in ("h5", "csv") and self.status in ("differs", "unreadable")


def _canon(value):
    """A value reduced to something compared exactly: type, shape and bytes."""
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "O":
            return ("object", value.shape, tuple(_canon(v) for v in value.ravel()))
        return (value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return (type(value).__name__, value)
    return (type(value).__name__, repr(value))


def _path_matches(path: str, patterns) -> bool:
    return any(path == p or path.endswith("/" + p) for p in patterns)


def _h5_objects(f: h5py.File) -> dict[str, h5py.HLObject]:
    objects: dict[str, h5py.HLObject] = {"/": f}

    def visit(name, obj):
        objects[name] = obj

    f.visititems(visit)
    return objects


def compare_h5(a: Path, b: Path, exempt_attrs, exempt_datasets) -> tuple[list[str], list[str]]:
    """(differences, exempt differences) between two HDF5 files, as names."""
    diffs: list[str] = []
    exempt: list[str] = []
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        oa, ob = _h5_objects(fa), _h5_objects(fb)
        for name in sorted(oa.keys() | ob.keys()):
            ex = _path_matches(name, exempt_datasets)
            if name not in ob or name not in oa:
                (exempt if ex else diffs).append(f"{name} (only in {'A' if name in oa else 'B'})")
                continue
            xa, xb = oa[name], ob[name]
            if isinstance(xa, h5py.Dataset) != isinstance(xb, h5py.Dataset):
                diffs.append(f"{name} (group in one, dataset in the other)")
                continue
            if isinstance(xa, h5py.Dataset):
                same = (str(xa.dtype), xa.shape) == (str(xb.dtype), xb.shape) and _canon(
                    np.asarray(xa[()])) == _canon(np.asarray(xb[()]))
                if not same:
                    label = f"{name}" + (f" (shape {xa.shape} vs {xb.shape})" if xa.shape != xb.shape else "")
                    (exempt if ex else diffs).append(label)
            prefix = "" if name == "/" else name
            for key in sorted(xa.attrs.keys() | xb.attrs.keys()):
                label = f"{prefix}@{key}"
                if key not in xa.attrs or key not in xb.attrs:
                    side = "A" if key in xa.attrs else "B"
                    (exempt if key in exempt_attrs else diffs).append(f"{label} (only in {side})")
                elif _canon(xa.attrs[key]) != _canon(xb.attrs[key]):
                    (exempt if key in exempt_attrs else diffs).append(label)
    return diffs, exempt


def _read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def compare_csv(a: Path, b: Path, exempt_columns) -> tuple[list[str], list[str]]:
    """(differences, exempt differences) between two CSV files: columns by name."""
    ra, rb = _read_csv(a), _read_csv(b)
    ha, hb = (ra[0] if ra else []), (rb[0] if rb else [])
    diffs: list[str] = []
    exempt: list[str] = []
    for col in ha:
        if col not in hb:
            (exempt if col in exempt_columns else diffs).append(f"{col} (only in A)")
    for col in hb:
        if col not in ha:
            (exempt if col in exempt_columns else diffs).append(f"{col} (only in B)")
    common = [c for c in ha if c in hb]
    if [c for c in ha if c in common] != [c for c in hb if c in common]:
        diffs.append("column order")
    if len(ra) != len(rb):
        diffs.append(f"rows ({len(ra) - 1} vs {len(rb) - 1})")
    for col in common:
        ia, ib = ha.index(col), hb.index(col)
        va = [row[ia] if ia < len(row) else None for row in ra[1:]]
        vb = [row[ib] if ib < len(row) else None for row in rb[1:]]
        if va != vb:
            rows = [i for i, (x, y) in enumerate(zip(va, vb)) if x != y]
            where = f" (rows {', '.join(map(str, rows[:5]))}{'...' if len(rows) > 5 else ''})" if rows else ""
            (exempt if col in exempt_columns else diffs).append(col + where)
    return diffs, exempt


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _kind(rel: str) -> str:
    if rel.lower().endswith(H5_SUFFIXES):
        return "h5"
    if rel.lower().endswith(".csv"):
        return "csv"
    return "other"


def compare_trees(dir_a: Path, dir_b: Path, also_exempt=()) -> list[FileResult]:
    exempt_attrs = set(TIMING_ATTRS) | set(also_exempt)
    exempt_datasets = set(TIMING_DATASETS) | set(also_exempt)
    exempt_columns = set(TIMING_COLUMNS) | set(also_exempt)
    fa, fb = _files(dir_a), _files(dir_b)
    results = []
    for rel in sorted(fa | fb):
        kind = _kind(rel)
        if rel not in fb or rel not in fa:
            results.append(FileResult(rel, kind, "only in A" if rel in fa else "only in B"))
            continue
        a, b = dir_a / rel, dir_b / rel
        if kind == "other":
            same = a.read_bytes() == b.read_bytes()
            results.append(FileResult(rel, kind, "bytes identical" if same else "bytes differ"))
            continue
        try:
            if kind == "h5":
                diffs, exempt = compare_h5(a, b, exempt_attrs, exempt_datasets)
            else:
                diffs, exempt = compare_csv(a, b, exempt_columns)
        except (OSError, csv.Error, ValueError) as exc:
            results.append(FileResult(rel, kind, "unreadable", [f"{type(exc).__name__}: {exc}"]))
            continue
        results.append(FileResult(rel, kind, "differs" if diffs else "identical", diffs, exempt))
    return results


def _cell(items: list[str], limit: int) -> str:
    if not items:
        return ""
    text = ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")
    return text.replace("|", "\\|")


def render(results: list[FileResult], limit: int = 12) -> str:
    lines = ["| file | kind | status | differences | exempt differences |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.path} | {r.kind} | {r.status} | {_cell(r.diffs, limit)} | {_cell(r.exempt, limit)} |")
    counts: dict[str, int] = {}
    for r in results:
        counts[f"{r.kind} {r.status}"] = counts.get(f"{r.kind} {r.status}", 0) + 1
    lines.append("")
    lines.append("Totals: " + "; ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir_a", type=Path)
    parser.add_argument("dir_b", type=Path)
    parser.add_argument("--also-exempt", action="append", default=[], metavar="NAME",
                        help="also exempt this attribute/column name or dataset path (repeatable)")
    parser.add_argument("--missing-fails", action="store_true",
                        help="an HDF5 or CSV file present in one tree only is a difference")
    parser.add_argument("--limit", type=int, default=12, help="names listed per cell of the table")
    args = parser.parse_args(argv)
    for d in (args.dir_a, args.dir_b):
        if not d.is_dir():
            parser.error(f"{d} is not a folder")
    results = compare_trees(args.dir_a, args.dir_b, args.also_exempt)
    print(f"A = {args.dir_a}\nB = {args.dir_b}")
    print(f"exempt: attributes {', '.join(sorted(set(TIMING_ATTRS) | set(args.also_exempt)))}; "
          f"datasets {', '.join(sorted(set(TIMING_DATASETS) | set(args.also_exempt)))}; "
          f"CSV columns {', '.join(sorted(set(TIMING_COLUMNS) | set(args.also_exempt)))}\n")
    print(render(results, args.limit))
    failing = [r for r in results if r.counts or (
        args.missing_fails and r.kind in ("h5", "csv") and r.status.startswith("only in"))]
    if failing:
        print(f"\nDIFFERENT: {len(failing)} HDF5/CSV file(s) differ in non-exempt items: "
              + ", ".join(r.path for r in failing))
        return 1
    print("\nSAME: every HDF5/CSV file present in both trees is identical apart from the exempt items.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
