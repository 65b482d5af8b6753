"""The report's data: result files and metric tables in, DataFrames out.

A method whose result file is missing or unreadable, or whose status is not
"ok", never stops a report: :func:`load_run` gives a run with status
"failed: ..." and no arrays, and :func:`complete_table` adds a failed row for
every expected (clip, method) without one. :func:`table_view` is what every
renderer (HTML, Markdown) draws: cell texts, the best value of each column
and the row's state, decided once here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..io import from_attr as _attr
from ..metrics import METRIC_COLUMNS

# Context columns (same for every method of a clip) vs metric columns.
CONTEXT_COLUMNS = ("clip", "method", "status", "frames", "frame_dt", "physics_dt")
METRICS = tuple(c for c in METRIC_COLUMNS if c not in CONTEXT_COLUMNS)
# Which direction is better for each metric; fall_frame: -1 (never) is best,
# otherwise later is better; fall_reason is text (never best).
LOWER_IS_BETTER = {"wall_s", "cost_replays", "single_step_err_rad", "err50_rad", "err_full_rad",
                   "root_drift50_m", "root_drift_end_m", "root_rot_err50_deg", "saturated_fraction"}
HIGHER_IS_BETTER = {"reward_mean", "tracked_fraction"}
MISSING_STATUS = "failed: no result"


def is_ok(status) -> bool:
    return isinstance(status, str) and status.strip() == "ok"


def diverged_frame(status) -> int:
    """Frame k of a status "diverged at frame k"; -1 for any other status."""
    m = re.search(r"diverged at frame (\d+)", str(status))
    return int(m.group(1)) if m else -1


def is_failed(status) -> bool:
    """True when there is no usable result (missing file, failed job)."""
    return not is_ok(status) and diverged_frame(status) < 0


# ---------------------------------------------------------------- result files

@dataclass
class MethodRun:
    """One method's evaluated replay of one clip.

    Arrays are None when the result could not be read (status says why).
    joint_err (T+1, 12) rad; root_err (T+1,) m; ref_qpos/replay_qpos
    (T+1, nq); history: column -> (K,) array; invdyn: name -> array
    (root_wrench (T, 6): force N, torque N m).
    """
    method: str
    path: Path
    status: str
    frame_dt: float = float("nan")
    fall_frame: int = -1
    fall_reason: str = ""
    joint_names: tuple = ()
    joint_err: np.ndarray | None = None
    root_err: np.ndarray | None = None
    ref_qpos: np.ndarray | None = None
    replay_qpos: np.ndarray | None = None
    history: dict = field(default_factory=dict)
    invdyn: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    @property
    def diverged_frame(self) -> int:
        return diverged_frame(self.status)

    @property
    def has_replay(self) -> bool:
        return self.joint_err is not None


def _group(f, name: str) -> dict:
    if name in f and isinstance(f[name], h5py.Group):
        return {k: np.asarray(v[()], dtype=float) for k, v in f[name].items() if isinstance(v, h5py.Dataset)}
    return {}


def load_run(path, method: str | None = None) -> MethodRun:
    """Read results/{clip}/{method}.h5. A missing or unreadable file gives a
    MethodRun with status "failed: ..." and no arrays, never an exception.
    `method` (the configured method the file stands for) wins over the
    file's own attribute, then its stem."""
    path = Path(path)
    name = method or path.stem
    if not path.is_file():
        return MethodRun(name, path, f"{MISSING_STATUS} ({path.name} missing)")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _attr(v) for k, v in f.attrs.items()}
            run = MethodRun(
                method=str(method or attrs.get("method", name)), path=path,
                status=str(attrs.get("status", "ok")),
                frame_dt=float(attrs.get("frame_dt", float("nan"))),
                fall_frame=int(attrs.get("fall_frame", -1)),
                fall_reason=str(attrs.get("fall_reason", "")),
                joint_names=tuple(str(_attr(n)) for n in attrs.get("joint_names", ())),
                joint_err=f["replay/joint_err"][()],
                root_err=f["replay/root_err"][()],
                ref_qpos=f["reference/qpos"][()],
                replay_qpos=f["replay/qpos"][()],
                attrs=attrs,
                history=_group(f, "history"),
                invdyn=_group(f, "invdyn"),
            )
            if "invdyn" in f and isinstance(f["invdyn"], h5py.Group):
                run.attrs.update({f"invdyn/{k}": _attr(v) for k, v in f["invdyn"].attrs.items()})
    except (OSError, KeyError, ValueError) as err:
        return MethodRun(name, path, f"failed: {path.name} unreadable ({err})")
    return run


def load_runs(h5_paths) -> list[MethodRun]:
    """Paths (or a dict method -> path) -> MethodRun per method, in order."""
    if isinstance(h5_paths, dict):
        return [load_run(p, m) for m, p in h5_paths.items()]
    return [load_run(p) for p in h5_paths]


def same_replay_as(runs) -> dict:
    """{method: earlier method} for replays identical to an earlier one (a
    warm-started method that did not change its init's actions): its curve
    hides the earlier one, so the figures say so."""
    out = {}
    drawn = [r for r in runs if r.has_replay]
    for k, run in enumerate(drawn):
        for prev in drawn[:k]:
            if prev.replay_qpos.shape == run.replay_qpos.shape and np.array_equal(
                    prev.replay_qpos, run.replay_qpos, equal_nan=True):
                out[run.method] = prev.method
                break
    return out


# ---------------------------------------------------------------- metric tables

def read_metrics(csv_path) -> pd.DataFrame:
    """A metric table (comparison.csv, summary.csv); a missing file is an
    empty table, a file without clip/method/status a ValueError naming it."""
    path = Path(csv_path)
    if not path.is_file():
        return pd.DataFrame(columns=list(METRIC_COLUMNS))
    table = pd.read_csv(path)
    missing = [c for c in ("clip", "method", "status") if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a metric table, columns {missing} missing")
    return table


def complete_table(table: pd.DataFrame, methods=None, clips=None) -> pd.DataFrame:
    """Metric rows plus a "failed: no result" row for every expected
    (clip, method) that has none, in the order clips x methods; failed rows
    carry no metric values (a crashed job's numbers mean nothing).
    methods/clips: expected names (default: those in the table)."""
    table = table.copy()
    for col in METRIC_COLUMNS:
        if col not in table.columns:
            table[col] = np.nan
    table["status"] = table["status"].fillna("failed: no status").astype(str)
    methods = list(methods) if methods is not None else list(dict.fromkeys(table["method"]))
    clips = list(clips) if clips is not None else list(dict.fromkeys(table["clip"]))
    have = set(zip(table["clip"], table["method"]))
    extra = [{"clip": c, "method": m, "status": MISSING_STATUS}
             for c in clips for m in methods if (c, m) not in have]
    if extra:
        table = pd.concat([table, pd.DataFrame(extra)], ignore_index=True)
    table.loc[table["status"].map(is_failed), list(METRICS)] = np.nan
    order_m = {m: i for i, m in enumerate(methods)}
    order_c = {c: i for i, c in enumerate(clips)}
    table["_c"] = table["clip"].map(lambda c: order_c.get(c, len(order_c)))
    table["_m"] = table["method"].map(lambda m: order_m.get(m, len(order_m)))
    table = table.sort_values(["_c", "_m"], kind="stable").drop(columns=["_c", "_m"])
    return table.reset_index(drop=True)


def best_rows(table: pd.DataFrame, column: str) -> set:
    """Index labels of the best value of `column` among rows whose replay did
    not diverge (among the diverged ones when every method diverged); failed
    rows never win. Ties all win."""
    ok = table[table["status"].map(is_ok)]
    pool = ok if len(ok) else table[~table["status"].map(is_failed)]
    values = pd.to_numeric(pool[column], errors="coerce").dropna()
    if values.empty:
        return set()
    if column == "fall_frame":
        never = values[values < 0]
        return set(never.index) if len(never) else set(values[values == values.max()].index)
    if column in HIGHER_IS_BETTER:
        return set(values[np.isclose(values, values.max(), rtol=1e-9, atol=0)].index)
    if column in LOWER_IS_BETTER:
        return set(values[np.isclose(values, values.min(), rtol=1e-9, atol=0)].index)
    return set()


def clip_table(comparison_csv, clip: str, methods=None, runs=None) -> pd.DataFrame:
    """One clip's complete metric table. `runs` (MethodRun list) marks as
    failed the methods whose result file is missing although the CSV has a
    row."""
    table = read_metrics(comparison_csv)
    table = table[table["clip"] == clip] if len(table) else table
    table = complete_table(table, methods, [clip])
    for run in runs or ():
        if is_failed(run.status):
            sel = table["method"] == run.method
            if sel.any() and not is_failed(table.loc[sel, "status"].iloc[0]):
                table.loc[sel, "status"] = run.status
                table.loc[sel, list(METRICS)] = np.nan
    return table


def clip_context(table: pd.DataFrame) -> str:
    """"N frames, frame_dt x ms, physics_dt y ms." of a clip table ("" when
    no row has them)."""
    rows = table.dropna(subset=["frames"])
    if not len(rows):
        return ""
    r = rows.iloc[0]
    return (f"{int(r['frames'])} frames, frame_dt {float(r['frame_dt']) * 1000:.1f} ms, "
            f"physics_dt {float(r['physics_dt']) * 1000:.2f} ms.")


def method_overview(table: pd.DataFrame) -> pd.DataFrame:
    """Per method across clips: clips won on err50_rad (ties count for all),
    median err50_rad, median tracked_fraction, clips that diverged or failed,
    median root_rot_err50_deg, total wall time and median cost_replays.
    table: complete_table output."""
    wins = {m: 0 for m in dict.fromkeys(table["method"])}
    for _, g in table.groupby("clip", sort=False):
        for i in best_rows(g, "err50_rad"):
            wins[table.loc[i, "method"]] += 1
    rows = []
    for method, g in table.groupby("method", sort=False):
        num = {c: pd.to_numeric(g[c], errors="coerce") for c in
               ("err50_rad", "tracked_fraction", "root_rot_err50_deg", "wall_s", "cost_replays")}
        rows.append({
            "method": method,
            "clips_best_err50": wins[method],
            "median_err50_rad": num["err50_rad"].median(),
            "median_tracked_fraction": num["tracked_fraction"].median(),
            "diverged": int(g["status"].map(lambda s: diverged_frame(s) >= 0).sum()),
            "failed": int(g["status"].map(is_failed).sum()),
            "median_root_rot_err50_deg": num["root_rot_err50_deg"].median(),
            "total_wall_s": num["wall_s"].sum(min_count=1),
            "median_cost_replays": num["cost_replays"].median(),
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- table view

def format_value(column: str, value) -> str:
    """A cell's text: "-" for missing, "never" for fall_frame -1, three
    significant digits (scientific beyond 1e3 or under 1e-3)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if column == "fall_frame":
        v = int(value)
        return "never" if v < 0 else str(v)
    if column in ("frames", "clips_best_err50", "diverged", "failed"):
        return str(int(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
        if v == 0:
            return "0"
        if abs(v) >= 1000 or abs(v) < 1e-3:
            return f"{v:.2e}"
        return f"{v:.3g}"
    return str(value)


def row_state(status: str) -> tuple[str, str]:
    """(state, text) of a status: ("ok", "ok"), ("diverged", "DIVERGED at
    frame k") or ("failed", "FAILED: reason")."""
    if is_ok(status):
        return "ok", "ok"
    if diverged_frame(status) >= 0:
        return "diverged", f"DIVERGED at frame {diverged_frame(status)}"
    reason = re.sub(r"^failed:?\s*", "", str(status))
    return "failed", f"FAILED: {reason}" if reason else "FAILED"


@dataclass(frozen=True)
class Cell:
    text: str
    best: bool = False
    numeric: bool = False


@dataclass(frozen=True)
class TableView:
    """A table as every renderer draws it: column names, and per row its
    state (ok, diverged, failed) and cells."""
    columns: tuple
    rows: tuple  # ((state, (Cell, ...)), ...)


TEXT_COLUMNS = ("clip", "method", "status", "fall_reason")


def table_view(table: pd.DataFrame, columns, group: str | None = None) -> TableView:
    """The cells of `columns`; the best value of each metric column (within
    each `group` value, e.g. per clip) marked; the status as ok / DIVERGED
    at frame k / FAILED: reason."""
    best: set = set()
    groups = [table] if group is None else [g for _, g in table.groupby(group, sort=False)]
    for g in groups:
        for col in columns:
            if col in METRICS:
                best |= {(i, col) for i in best_rows(g, col)}
    rows = []
    for i, row in table.iterrows():
        state = row_state(row["status"])[0] if "status" in row else "ok"
        cells = []
        for col in columns:
            text = row_state(row[col])[1] if col == "status" else (
                str(row[col]) if col == "method" else format_value(col, row[col]))
            cells.append(Cell(text, (i, col) in best, col not in TEXT_COLUMNS))
        rows.append((state, tuple(cells)))
    return TableView(tuple(columns), tuple(rows))


METRIC_NOTES = (
    "Best value per column marked (bold) among methods whose replay stayed valid "
    "(among the diverged ones when all diverged). Lower is better for errors, "
    "drifts, wall time, cost_replays (wall time in open-loop replays of the "
    "clip) and saturation; higher for reward_mean and tracked_fraction; "
    "fall_frame \"never\" is best, fall_reason says which rule fired "
    "(height, orientation, contact, diverged). DIVERGED: the "
    "physics blew up at that frame and the replay state was frozen there; "
    "its numbers describe that frozen replay. FAILED: no result "
    "(the job failed or its file is missing)."
)
OVERVIEW_NOTE = "Per method across clips (median over clips that have a result):"
