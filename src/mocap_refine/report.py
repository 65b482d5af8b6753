"""Comparison figures and tables for people who pick a method by looking.

Per clip (from the evaluated result files ``results/{clip}/{method}.h5`` and
``results/{clip}/comparison.csv``):
    plot_clip              -> comparison.png (joint error per frame, root path
                              from above, error per joint, convergence history,
                              invdyn root residual)
    write_clip_markdown    -> comparison.md (metric table, best per column bold)
Across clips (from ``results/summary.csv``):
    plot_summary           -> summary.png (clip x method heat maps, wall time)
    write_summary_markdown -> summary.md (per-method overview + every row)
Optional:
    animate_replay         -> {method}.gif (skeleton of the replay beside the
                              reference as a ghost)

A method whose result file is missing or unreadable, or whose status is not
"ok", never stops a report: it is drawn as far as its data goes and shown as
failed/diverged in the tables. Every colour of a method is taken from
:func:`method_color`, so a method looks the same in every figure.
"""

from __future__ import annotations

import html
import math
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")  # files only, no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import colors as mcolors  # noqa: E402
from matplotlib import ticker  # noqa: E402

from .io import atomic_path  # noqa: E402
from .methods import REGISTRY
from .metrics import METRIC_COLUMNS  # noqa: E402

# Fixed colours: a method has the same colour in every figure of every clip.
# A method's colour is part of its registry entry (methods.REGISTRY).
METHOD_COLORS = {name: spec.color for name, spec in REGISTRY.items()}
REFERENCE_COLOR = "#000000"
# Colours for method names not in METHOD_COLORS (new methods, renamed
# variants), chosen by a stable hash of the name so they do not depend on
# which other methods are configured.
_EXTRA_COLORS = ("#d62728", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79", "#637939")

# Context columns (same for every method of a clip) vs metric columns.
CONTEXT_COLUMNS = ("clip", "method", "status", "frames", "frame_dt", "physics_dt")
METRICS = tuple(c for c in METRIC_COLUMNS if c not in CONTEXT_COLUMNS)
# Which direction is better for each metric; fall_frame: -1 (never) is best,
# otherwise later is better; fall_reason is text (never bold).
LOWER_IS_BETTER = {"wall_s", "cost_replays", "single_step_err_rad", "err50_rad", "err_full_rad",
                   "root_drift50_m", "root_drift_end_m", "root_rot_err50_deg", "saturated_fraction"}
HIGHER_IS_BETTER = {"reward_mean", "tracked_fraction"}
MISSING_STATUS = "failed: no result"
GRAVITY_M_S2 = 9.81
BODY_MASS_KG = 45.0  # DeepMimic humanoid (DEEPMIMIC_FACTS.md); used when a file has no body_weight_n

CLIP_FIGSIZE_IN = (15.0, 12.0)
DPI = 100


def method_color(method: str) -> str:
    """Colour of a method in every figure (hex string)."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return _EXTRA_COLORS[zlib.crc32(method.encode()) % len(_EXTRA_COLORS)]


def is_ok(status) -> bool:
    return isinstance(status, str) and status.strip() == "ok"


def diverged_frame(status) -> int:
    """Frame k of a status "diverged at frame k"; -1 for any other status."""
    m = re.search(r"diverged at frame (\d+)", str(status))
    return int(m.group(1)) if m else -1


def is_failed(status) -> bool:
    """True when there is no usable result (missing file, failed job)."""
    return not is_ok(status) and diverged_frame(status) < 0


# ---------------------------------------------------------------- loading

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


def _attr(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_run(path, method: str | None = None) -> MethodRun:
    """Read results/{clip}/{method}.h5. A missing or unreadable file gives a
    MethodRun with status "failed: ..." and no arrays, never an exception."""
    path = Path(path)
    # The caller's name wins (the configured method the file stands for);
    # otherwise the file's own attribute, then its stem.
    given = method
    method = given or path.stem
    if not path.is_file():
        return MethodRun(method, path, f"{MISSING_STATUS} ({path.name} missing)")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _attr(v) for k, v in f.attrs.items()}
            run = MethodRun(
                method=str(given or attrs.get("method", method)), path=path,
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
            )
            if "history" in f and isinstance(f["history"], h5py.Group):
                run.history = {k: np.asarray(v[()], dtype=float) for k, v in f["history"].items()
                               if isinstance(v, h5py.Dataset)}
            if "invdyn" in f and isinstance(f["invdyn"], h5py.Group):
                run.invdyn = {k: np.asarray(v[()], dtype=float) for k, v in f["invdyn"].items()
                              if isinstance(v, h5py.Dataset)}
                run.attrs.update({f"invdyn/{k}": _attr(v) for k, v in f["invdyn"].attrs.items()})
    except (OSError, KeyError, ValueError) as err:
        return MethodRun(method, path, f"failed: {path.name} unreadable ({err})")
    return run


def load_runs(h5_paths) -> list[MethodRun]:
    """Paths (or a dict method -> path) -> MethodRun per method, in order."""
    if isinstance(h5_paths, dict):
        return [load_run(p, m) for m, p in h5_paths.items()]
    return [load_run(p) for p in h5_paths]


# ---------------------------------------------------------------- tables

def complete_table(table: pd.DataFrame, methods=None, clips=None) -> pd.DataFrame:
    """Metric rows plus a "failed: no result" row for every expected
    (clip, method) that has none, in the order clips x methods.

    table: rows with METRIC_COLUMNS; methods/clips: expected names (default:
    those in the table).
    """
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
    # Failed rows carry no metric values: a crashed job's numbers mean nothing.
    failed = table["status"].map(is_failed)
    table.loc[failed, list(METRICS)] = np.nan
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
        if len(never):
            return set(never.index)
        return set(values[values == values.max()].index)
    if column in HIGHER_IS_BETTER:
        return set(values[np.isclose(values, values.max(), rtol=1e-9, atol=0)].index)
    if column in LOWER_IS_BETTER:
        return set(values[np.isclose(values, values.min(), rtol=1e-9, atol=0)].index)
    return set()


def _fmt(column: str, value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if column == "fall_frame":
        v = int(value)
        return "never" if v < 0 else str(v)
    if column == "frames":
        return str(int(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
        if v == 0:
            return "0"
        if abs(v) >= 1000 or abs(v) < 1e-3:
            return f"{v:.2e}"
        return f"{v:.3g}"
    return str(value)


def _status_cell(status: str) -> str:
    if is_ok(status):
        return "ok"
    if diverged_frame(status) >= 0:
        return f"**DIVERGED** at frame {diverged_frame(status)}"
    reason = re.sub(r"^failed:?\s*", "", str(status))
    return f"**FAILED**: {reason}" if reason else "**FAILED**"


def markdown_table(table: pd.DataFrame, columns, group: str | None = None) -> str:
    """GitHub markdown table of `columns`; the best value of each metric
    column (within each `group` value, e.g. per clip) in bold; status shown
    as ok / **DIVERGED** / **FAILED**."""
    bold: set = set()
    groups = [table] if group is None else [g for _, g in table.groupby(group, sort=False)]
    for g in groups:
        for col in columns:
            if col in METRICS:
                bold |= {(i, col) for i in best_rows(g, col)}
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---" if c in ("clip", "method", "status") else "---:" for c in columns) + "|"]
    for i, row in table.iterrows():
        cells = []
        for col in columns:
            if col == "status":
                cells.append(_status_cell(row[col]))
                continue
            text = _fmt(col, row[col])
            cells.append(f"**{text}**" if (i, col) in bold else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_METRIC_NOTES = (
    "Bold: best value per column among methods whose replay stayed valid "
    "(among the diverged ones when all diverged). Lower is better for errors, "
    "drifts, wall time, `cost_replays` (wall time in open-loop replays of the "
    "clip) and saturation; higher for `reward_mean` and `tracked_fraction`; "
    "`fall_frame` \"never\" is best, `fall_reason` says which rule fired "
    "(height, orientation, contact, diverged). **DIVERGED**: the "
    "physics blew up at that frame and the replay state was frozen there; "
    "its numbers describe that frozen replay. **FAILED**: no result "
    "(the job failed or its file is missing)."
)


def _read_metrics(csv_path) -> pd.DataFrame:
    path = Path(csv_path)
    if not path.is_file():
        return pd.DataFrame(columns=list(METRIC_COLUMNS))
    table = pd.read_csv(path)
    missing = [c for c in ("clip", "method", "status") if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a metric table, columns {missing} missing")
    return table


def clip_markdown(comparison_csv, clip: str, methods=None, runs=None) -> str:
    """Markdown of one clip's metric table. `runs` (MethodRun list) adds the
    status of result files that are missing although the CSV has a row."""
    table = _read_metrics(comparison_csv)
    table = table[table["clip"] == clip] if len(table) else table
    table = complete_table(table, methods, [clip])
    for run in runs or ():
        if is_failed(run.status):
            sel = table["method"] == run.method
            if sel.any() and not is_failed(table.loc[sel, "status"].iloc[0]):
                table.loc[sel, "status"] = run.status
                table.loc[sel, list(METRICS)] = np.nan
    context = ""
    okrows = table.dropna(subset=["frames"])
    if len(okrows):
        r = okrows.iloc[0]
        context = (f"{int(r['frames'])} frames, frame_dt {float(r['frame_dt']) * 1000:.1f} ms, "
                   f"physics_dt {float(r['physics_dt']) * 1000:.2f} ms.\n\n")
    columns = ["method", "status", *METRICS]
    return (f"# {clip}: method comparison\n\n{context}"
            + markdown_table(table, columns) + "\n" + _METRIC_NOTES + "\n")


def _inline_html(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


_HTML_STYLE = """
body { font-family: sans-serif; margin: 1em; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #bbb; padding: 3px 7px; }
th { background: #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td { background: #f8d7d7; }
tr.diverged td { background: #fdf0d0; }
p { max-width: 60em; }
"""


def markdown_to_html(text: str, title: str) -> str:
    """The markdown this module writes (headings, paragraphs, pipe tables,
    bold, code) as a standalone HTML page: the Snakemake report shows HTML
    inline but offers markdown only as a download."""
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{_HTML_STYLE}</style></head><body>"]
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            header, align, body = block[0], block[1], block[2:]
            numeric = [a.endswith(":") for a in align]
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline_html(h)}</th>" for h in header)
                       + "</tr></thead><tbody>")
            for row in body:
                cls = ("failed" if any("**FAILED**" in c for c in row)
                       else "diverged" if any("**DIVERGED**" in c for c in row) else "")
                cells = "".join(f"<td class='{'num' if n else ''}'>{_inline_html(c)}</td>"
                                for c, n in zip(row, numeric))
                out.append(f"<tr class='{cls}'>{cells}</tr>")
            out.append("</tbody></table>")
            continue
        if line.startswith("## "):
            out.append(f"<h2>{_inline_html(line[3:])}</h2>")
        elif line.startswith("# "):
            out.append(f"<h1>{_inline_html(line[2:])}</h1>")
        elif line.strip():
            out.append(f"<p>{_inline_html(line)}</p>")
        i += 1
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def write_clip_markdown(comparison_csv, out_md, clip: str, methods=None, h5_paths=None,
                        out_html=None) -> None:
    """comparison.md (and, with out_html, the same table as HTML)."""
    runs = load_runs(h5_paths) if h5_paths is not None else None
    text = clip_markdown(comparison_csv, clip, methods, runs)
    _write_text(out_md, text)
    if out_html is not None:
        _write_text(out_html, markdown_to_html(text, f"{clip}: method comparison"))


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
        rows.append({
            "method": method,
            "clips_best_err50": wins[method],
            "median_err50_rad": pd.to_numeric(g["err50_rad"], errors="coerce").median(),
            "median_tracked_fraction": pd.to_numeric(g["tracked_fraction"], errors="coerce").median(),
            "diverged": int(g["status"].map(lambda s: diverged_frame(s) >= 0).sum()),
            "failed": int(g["status"].map(is_failed).sum()),
            "median_root_rot_err50_deg": pd.to_numeric(g["root_rot_err50_deg"], errors="coerce").median(),
            "total_wall_s": pd.to_numeric(g["wall_s"], errors="coerce").sum(min_count=1),
            "median_cost_replays": pd.to_numeric(g["cost_replays"], errors="coerce").median(),
        })
    return pd.DataFrame(rows)


def summary_markdown(summary_csv, methods=None, clips=None) -> str:
    table = complete_table(_read_metrics(summary_csv), methods, clips)
    overview = method_overview(table)
    lines = ["# Summary: every clip and method", ""]
    lines.append(f"{table['clip'].nunique()} clips x {table['method'].nunique()} methods. "
                 "Per method across clips (median over clips that have a result):")
    lines.append("")
    ov_cols = list(overview.columns)
    ov = ["| " + " | ".join(ov_cols) + " |", "|---|" + "---:|" * (len(ov_cols) - 1)]
    for _, r in overview.iterrows():
        ov.append("| " + " | ".join(_fmt(c, r[c]) if c != "method" else r[c] for c in ov_cols) + " |")
    lines += ov
    lines += ["", "## Every clip and method", "",
              markdown_table(table, ["clip", "method", "status", "frames", *METRICS], group="clip"),
              _METRIC_NOTES.replace("per column", "per column within each clip"), ""]
    return "\n".join(lines)


def write_summary_markdown(summary_csv, out_md, methods=None, clips=None, out_html=None) -> None:
    """summary.md (and, with out_html, the same tables as HTML)."""
    text = summary_markdown(summary_csv, methods, clips)
    _write_text(out_md, text)
    if out_html is not None:
        _write_text(out_html, markdown_to_html(text, "Summary: every clip and method"))


# ---------------------------------------------------------------- clip figure

def _log_axis(ax, which: str = "y") -> None:
    """Log scale with readable ticks: plain numbers at 1, 2, 5 x 10^k over
    up to 3 decades, powers of ten beyond. Call after plotting (reads the
    data limits)."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    lo, hi = ax.get_ylim() if which == "y" else ax.get_xlim()
    if lo > 0 and hi / lo <= 1e3:
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    else:
        axis.set_major_locator(ticker.LogLocator(base=10, numticks=8))
        axis.set_major_formatter(ticker.LogFormatterSciNotation())
    axis.set_minor_formatter(ticker.NullFormatter())


def _line_widths(n: int) -> list:
    """Line width per method in drawing order: the first drawn is the
    widest, so a later method with identical data (a warm start that did not
    move) leaves its predecessor visible around it."""
    return [1.4 + 3.6 * (n - 1 - k) / max(n - 1, 1) for k in range(n)]


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes,
            fontsize=10, color="#555555", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _fate(run: MethodRun) -> str:
    """"falls at 11 (contact), diverged at 77" / "falls at 8 (height)" / ""
    (tracks to the end)."""
    parts = []
    if run.fall_frame >= 0 and run.fall_frame != run.diverged_frame:
        parts.append(f"falls at {run.fall_frame}{_reason(run)}")
    if run.diverged_frame >= 0:
        parts.append(f"diverged at {run.diverged_frame}")
    return ", ".join(parts)


def _reason(run: MethodRun) -> str:
    """" (contact)" etc.: the fall rule that fired, "" when unknown (files
    written before fall_reason existed) or "diverged" (said separately)."""
    reason = run.fall_reason.strip()
    return f" ({reason})" if reason and reason != "diverged" else ""


def same_replay_as(runs) -> dict:
    """{method: earlier method} for replays identical to an earlier one (a
    warm-started method that did not change its init's actions): its curve
    hides the earlier one, so the figure says so."""
    out = {}
    drawn = [r for r in runs if r.has_replay]
    for k, run in enumerate(drawn):
        for prev in drawn[:k]:
            if prev.replay_qpos.shape == run.replay_qpos.shape and np.array_equal(
                    prev.replay_qpos, run.replay_qpos, equal_nan=True):
                out[run.method] = prev.method
                break
    return out


def _replay_label(run: MethodRun, same: dict | None = None) -> str:
    parts = [_fate(run)]
    if same and run.method in same:
        parts.append(f"same replay as {same[run.method]}")
    text = "; ".join(p for p in parts if p)
    return f"{run.method} ({text})" if text else run.method


ERR_FLOOR_RAD = 1e-4  # log axis: exact frames (error 0) are drawn at this floor


def plot_joint_error(ax, runs) -> dict:
    """Mean joint error (rad, log axis) per frame for every method with a
    replay; each fall frame marked by a dashed vertical line and a triangle
    on the curve, each divergence by a cross. Returns {method: fall frame
    marked} (only methods that fall)."""
    marked = {}
    drawn = [r for r in runs if r.has_replay]
    if not drawn:
        _no_data(ax, "no data: no method has a replay")
        return marked
    same = same_replay_as(drawn)
    for run, lw in zip(drawn, _line_widths(len(drawn))):
        err = run.joint_err.mean(axis=1)
        frames = np.arange(err.shape[0])
        color = method_color(run.method)
        ax.plot(frames[1:], np.maximum(err[1:], ERR_FLOOR_RAD), color=color, lw=lw,
                label=_replay_label(run, same))
        fall = run.fall_frame
        if 0 <= fall < err.shape[0]:
            ax.axvline(fall, color=color, ls="--", lw=1.0, alpha=0.8)
            ax.plot([fall], [max(err[fall], ERR_FLOOR_RAD)], marker="v", ms=10, color=color,
                    mec="black", ls="none", gid=f"fall:{run.method}")
            marked[run.method] = int(fall)
        div = run.diverged_frame
        if 0 <= div < err.shape[0]:
            ax.plot([div], [max(err[div], ERR_FLOOR_RAD)], marker="X", ms=10, color=color,
                    mec="black", ls="none", gid=f"diverged:{run.method}")
    _log_axis(ax)
    dt = drawn[0].frame_dt
    unit = f" ({dt * 1000:.1f} ms each)" if math.isfinite(dt) else ""
    ax.set_xlabel(f"frame{unit}")
    ax.set_ylabel("mean joint error (rad, log)")
    ax.set_title("Open-loop replay: joint error per frame\n"
                 "dashed line + triangle: fall (root height off > 0.25 m, root rotation off > 60 deg,\n"
                 "or a body other than the feet on the floor where the reference's is not); "
                 "X: physics diverged")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    return marked


def plot_root_path(ax, runs) -> None:
    """Root x-y path seen from above: reference (black, dashed) and every
    method's replay; circle: start, triangle: fall."""
    drawn = [r for r in runs if r.has_replay]
    if not drawn:
        _no_data(ax, "no data: no method has a replay")
        return
    ref = drawn[0].ref_qpos
    ax.plot(ref[:, 0], ref[:, 1], color=REFERENCE_COLOR, ls="--", lw=2.2, label="reference")
    ax.plot(ref[0, 0], ref[0, 1], "o", color=REFERENCE_COLOR, ms=7)
    for run, lw in zip(drawn, _line_widths(len(drawn))):
        q = run.replay_qpos
        color = method_color(run.method)
        ax.plot(q[:, 0], q[:, 1], color=color, lw=lw, label=run.method)
        if 0 <= run.fall_frame < q.shape[0]:
            ax.plot(q[run.fall_frame, 0], q[run.fall_frame, 1], "v", color=color, ms=9, mec="black")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title("Root path from above\n(o: start, triangle: fall)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)


def plot_joint_bars(ax, runs) -> None:
    """Mean error per joint over frames 1..T, one bar per method per joint."""
    drawn = [r for r in runs if r.has_replay]
    if not drawn:
        _no_data(ax, "no data: no method has a replay")
        return
    names = drawn[0].joint_names or tuple(f"joint {j}" for j in range(drawn[0].joint_err.shape[1]))
    x = np.arange(len(names))
    width = 0.8 / len(drawn)
    for k, run in enumerate(drawn):
        per_joint = run.joint_err[1:].mean(axis=0)
        ax.bar(x - 0.4 + (k + 0.5) * width, per_joint, width, color=method_color(run.method),
               label=run.method)
    ax.set_xticks(x)
    ax.set_xticklabels([n.replace("_", " ") for n in names], rotation=30, ha="right", fontsize=9)
    ax.set_ylabel("mean error over frames 1..T (rad)")
    ax.set_title("Error per joint (open-loop replay, whole clip)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(drawn), 3))


def plot_history(ax, runs) -> None:
    """Convergence of the iterative methods: tracking loss (log) per history
    row; falls back to err_full_rad when a history has no loss."""
    with_hist = [r for r in runs if r.history]
    if not with_hist:
        _no_data(ax, "no data: none of these methods is iterative\n(no /history in the result files)")
        ax.set_title("Convergence of the iterative methods")
        return
    ylabels = set()
    for run in with_hist:
        h = run.history
        key = "loss" if "loss" in h else ("err_full_rad" if "err_full_rad" in h else None)
        if key is None:
            continue
        y = h[key]
        x = h.get("iteration", np.arange(len(y)))
        # Receding-window methods restart the iteration count per window;
        # then the row number is the honest x axis.
        if len(x) != len(y) or np.any(np.diff(x) <= 0):
            x = np.arange(len(y))
        second = np.asarray(h.get("pass", np.zeros(len(y)))) == 2
        if len(second) != len(y):
            second = np.zeros(len(y), dtype=bool)
        ax.plot(x[~second], y[~second], marker="o", ms=3, color=method_color(run.method), label=run.method)
        if second.any():
            # gradient's second pass (long window) restarts from the init:
            # its window losses are not a continuation of the first pass's.
            ax.plot(x[second], y[second], marker="s", ms=3, ls="--", mfc="none",
                    color=method_color(run.method), label=f"{run.method} (second pass)")
        ylabels.add(key)
    if not ylabels:
        _no_data(ax, "no data: histories have no loss or err_full_rad column")
        return
    if all(np.all(np.asarray(r.history.get("loss", r.history.get("err_full_rad", [1]))) > 0)
           for r in with_hist):
        _log_axis(ax)
    ax.set_xlabel("iteration (history row)")
    ax.set_ylabel("tracking loss" if ylabels == {"loss"} else " / ".join(sorted(ylabels)))
    ax.set_title("Convergence of the iterative methods")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def body_weight_n(run: MethodRun) -> float:
    for key in ("invdyn/body_weight_n", "body_weight_n"):
        if key in run.attrs:
            return float(run.attrs[key])
    return BODY_MASS_KG * GRAVITY_M_S2


def plot_invdyn(ax_force, ax_torque, runs) -> None:
    """Inverse dynamics' root residual: |force| (N) and |torque| (N m) the
    free joint would need per frame, with and without contacts, force against
    body weight (log axes: the with-contact residual reaches kN)."""
    with_inv = [r for r in runs if "root_wrench" in r.invdyn]
    if not with_inv:
        for ax in (ax_force, ax_torque):
            _no_data(ax, "no data: no inverse-dynamics result\n(/invdyn/root_wrench)")
        ax_force.set_title("Inverse dynamics: root residual force")
        ax_torque.set_title("Inverse dynamics: root residual torque")
        return
    weight = body_weight_n(with_inv[0])
    for run in with_inv:
        color = method_color(run.method)
        for key, ls, suffix in (("root_wrench", "-", "with contacts"),
                                ("root_wrench_nocontact", ":", "contacts off")):
            w = run.invdyn.get(key)
            if w is None or w.ndim != 2 or w.shape[1] < 6:
                continue
            frames = np.arange(w.shape[0])
            label = f"{run.method}, {suffix}"
            # Floor for the log axis: a frame with zero residual is drawn at 0.1.
            ax_force.plot(frames, np.maximum(np.linalg.norm(w[:, :3], axis=1), 0.1), color=color,
                          ls=ls, label=label)
            ax_torque.plot(frames, np.maximum(np.linalg.norm(w[:, 3:6], axis=1), 0.1), color=color,
                           ls=ls, label=label)
    ax_force.axhline(weight, color=REFERENCE_COLOR, lw=1.2, ls="--", label=f"body weight {weight:.0f} N")
    for ax, unit, what in ((ax_force, "N", "force"), (ax_torque, "N m", "torque")):
        _log_axis(ax)
        ax.set_xlabel("frame")
        ax.set_ylabel(f"|root residual {what}| ({unit})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax_force.set_title("Inverse dynamics: root residual force\n(needed from nowhere; compare with body weight)")
    ax_torque.set_title("Inverse dynamics: root residual torque")


def plot_status(ax, runs) -> None:
    """Text panel: one line per method with its status, in its colour."""
    ax.set_axis_off()
    ax.set_title("Methods")
    same = same_replay_as(runs)
    n = max(len(runs), 1)
    for k, run in enumerate(runs):
        if is_ok(run.status):
            state = ("ok, never falls" if run.fall_frame < 0
                     else f"ok, falls at frame {run.fall_frame}{_reason(run)}")
        elif run.diverged_frame >= 0:
            state = f"DIVERGED at frame {run.diverged_frame}"
            if 0 <= run.fall_frame < run.diverged_frame:
                state += f", falls at {run.fall_frame}{_reason(run)}"
        else:
            state = "FAILED: no result"
        err = run.attrs.get("err50_rad")
        extra = f"\nerr50 {float(err):.3g} rad" if err is not None else ""
        if run.method in same:
            extra += f", same replay as {same[run.method]}"
        ax.text(0.02, 1 - (k + 0.5) / n, f"{run.method}: {state}{extra}", transform=ax.transAxes,
                color=method_color(run.method), fontsize=10, va="center", fontweight="bold")


def plot_clip(h5_paths, out_png, clip: str | None = None) -> dict:
    """comparison.png for one clip from its result files.

    h5_paths: list of results/{clip}/{method}.h5 or dict method -> path
    (missing files are shown as failed). Returns {"fall_frames": {method:
    frame marked}, "size_px": (width, height)}.
    """
    runs = load_runs(h5_paths)
    if clip is None:
        clip = next((str(r.attrs["clip"]) for r in runs if "clip" in r.attrs), "?")
    fig, axes = plt.subplot_mosaic(
        [["err", "err", "path"], ["joint", "joint", "hist"], ["force", "torque", "status"]],
        figsize=CLIP_FIGSIZE_IN, dpi=DPI, layout="constrained")
    try:
        marked = plot_joint_error(axes["err"], runs)
        plot_root_path(axes["path"], runs)
        plot_joint_bars(axes["joint"], runs)
        plot_history(axes["hist"], runs)
        plot_invdyn(axes["force"], axes["torque"], runs)
        plot_status(axes["status"], runs)
        fig.suptitle(f"Clip {clip}: methods compared by open-loop replay", fontsize=15)
        size = tuple(int(v) for v in fig.canvas.get_width_height())
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return {"fall_frames": marked, "size_px": size}


# ---------------------------------------------------------------- summary figure

def summary_figsize(n_clips: int, n_methods: int) -> tuple[float, float]:
    """Inches of summary.png: grows with the table so cells stay legible."""
    width = 4 * max(3.2, 0.9 * n_methods + 1.6) + 1.5
    height = max(4.5, 0.42 * n_clips + 2.6)
    return (round(width, 2), round(height, 2))


def _heatmap(ax, table, clips, methods, column, title, norm, cmap, fmt):
    grid = np.full((len(clips), len(methods)), np.nan)
    status = np.full((len(clips), len(methods)), MISSING_STATUS, dtype=object)
    for _, r in table.iterrows():
        if r["clip"] in clips and r["method"] in methods:
            i, j = clips.index(r["clip"]), methods.index(r["method"])
            grid[i, j] = pd.to_numeric(r[column], errors="coerce")
            status[i, j] = r["status"]
    cmap = plt.get_cmap(cmap).with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
    for i in range(len(clips)):
        for j in range(len(methods)):
            v = grid[i, j]
            if is_failed(status[i, j]) or not np.isfinite(v):
                ax.text(j, i, "failed", ha="center", va="center", fontsize=8, color="#aa0000")
                continue
            text = fmt(v) + ("\ndiverged" if diverged_frame(status[i, j]) >= 0 else "")
            r, g, b, _ = im.cmap(im.norm(v))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods, rotation=30, ha="right")
    for tick, m in zip(ax.get_xticklabels(), methods):
        tick.set_color(method_color(m))
        tick.set_fontweight("bold")
    ax.set_yticks(range(len(clips)))
    ax.set_yticklabels(clips)
    ax.set_title(title)
    cbar = ax.figure.colorbar(im, ax=ax, shrink=0.8)
    if isinstance(norm, mcolors.LogNorm):
        cbar.ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        cbar.ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        cbar.ax.yaxis.set_minor_formatter(ticker.NullFormatter())


# Fixed colour scales, so a colour means the same error in every run and a
# small spread between bad methods is not painted as good vs bad.
# 0.02 rad (about 1 degree) tracks as well as the clip's own noise; 1.5 rad
# is a humanoid lying on the floor.
ERR50_NORM = (0.02, 1.5)
DRIFT50_NORM = (0.01, 1.0)  # m: a centimetre vs a body width off


def plot_summary(summary_csv, out_png, methods=None, clips=None) -> dict:
    """summary.png: heat maps clip x method of err50_rad, root_drift50_m and
    tracked_fraction (values written in the cells; failed cells grey), and
    total wall time per method (with its median cost_replays). Returns
    {"size_px": (w, h)}."""
    table = complete_table(_read_metrics(summary_csv), methods, clips)
    methods = list(methods) if methods is not None else list(dict.fromkeys(table["method"]))
    clips = list(clips) if clips is not None else list(dict.fromkeys(table["clip"]))
    fig, axes = plt.subplots(1, 4, figsize=summary_figsize(len(clips), len(methods)), dpi=DPI,
                             layout="constrained")
    try:
        if not clips or not methods:
            for ax in axes:
                _no_data(ax, "no data: summary.csv has no rows")
        else:
            _heatmap(axes[0], table, clips, methods, "err50_rad",
                     "err50_rad: mean joint error,\nframes 1-50 (rad, lower is better)",
                     mcolors.LogNorm(*ERR50_NORM, clip=True), "RdYlGn_r", lambda v: f"{v:.2g}")
            _heatmap(axes[1], table, clips, methods, "root_drift50_m",
                     "root_drift50_m: root position error\nat frame 50 (m, lower is better)",
                     mcolors.LogNorm(*DRIFT50_NORM, clip=True), "RdYlGn_r", lambda v: f"{v:.2g}")
            _heatmap(axes[2], table, clips, methods, "tracked_fraction",
                     "tracked_fraction: share of the clip\nbefore the fall (higher is better)",
                     mcolors.Normalize(0.0, 1.0), "RdYlGn", lambda v: f"{v:.2f}")
            _wall_time_bars(axes[3], table, methods)
        fig.suptitle("All clips: which method tracks best, and at what cost", fontsize=14)
        size = tuple(int(v) for v in fig.canvas.get_width_height())
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return {"size_px": size}


def _wall_time_bars(ax, table, methods) -> None:
    wall = [pd.to_numeric(table.loc[table["method"] == m, "wall_s"], errors="coerce") for m in methods]
    totals = np.array([w.sum(min_count=1) for w in wall], dtype=float)
    # Median over clips of the cost in open-loop replays of the clip (NaN
    # for tables written before cost_replays existed: not shown).
    costs = [pd.to_numeric(table.loc[table["method"] == m, "cost_replays"], errors="coerce").median()
             for m in methods]
    if not np.isfinite(totals).any():
        _no_data(ax, "no data: no wall_s values")
        return
    x = np.arange(len(methods))
    heights = np.where(np.isfinite(totals), totals, 0.0)
    ax.bar(x, heights, color=[method_color(m) for m in methods])
    trans = matplotlib.transforms.blended_transform_factory(ax.transData, ax.transAxes)
    for xi, t, w, c in zip(x, totals, wall, costs):
        if not np.isfinite(t):
            ax.text(xi, 0.02, "failed", transform=trans, ha="center", va="bottom", fontsize=8,
                    color="#aa0000")
            continue
        cost = f"\n{c:,.0f} replays" if np.isfinite(c) and c >= 10 else (
            f"\n{c:.2g} replays" if np.isfinite(c) else "")
        ax.annotate(f"{t:.3g} s\n({int(w.notna().sum())} clips){cost}", (xi, t), xytext=(0, 3),
                    textcoords="offset points", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels(methods, rotation=30, ha="right")
    pos = totals[np.isfinite(totals) & (totals > 0)]
    if len(pos) and pos.max() / pos.min() > 20:
        ax.set_yscale("log")
        ax.set_ylim(pos.min() / 3, pos.max() * 10)
        _log_axis(ax)
    else:
        ax.set_ylim(0, (pos.max() if len(pos) else 1) * 1.5)
    ax.set_ylabel("wall time summed over clips (s)")
    ax.set_title("Cost: time to compute the actions\n(summed over clips; under it the median\n"
                 "over clips in open-loop replays of the clip)")
    ax.grid(True, axis="y", which="major", alpha=0.3)


# ---------------------------------------------------------------- animation

def skeleton_points(model, qpos: np.ndarray) -> tuple[np.ndarray, list]:
    """(T, nq) -> joint positions (T, P, 3) m and the segments [(i, j), ...]
    between them: every body's origin joined to its parent's, plus the head
    and feet (geom centres away from their body's origin)."""
    import mujoco

    data = mujoco.MjData(model)
    bodies = list(range(1, model.nbody))  # skip the world
    index = {b: k for k, b in enumerate(bodies)}
    segments = [(index[model.body_parentid[b]], index[b]) for b in bodies
                if model.body_parentid[b] in index]
    # Geoms whose centre is away from their body's origin and that belong to
    # a body with no child (feet) or to the neck (head) extend the skeleton.
    has_child = {int(p) for p in model.body_parentid[1:]}
    extra = []
    for g in range(model.ngeom):
        b = int(model.geom_bodyid[g])
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b) or ""
        if b in index and (b not in has_child or name == "neck") and np.linalg.norm(model.geom_pos[g]) > 0.02:
            extra.append(g)
    P = len(bodies) + len(extra)
    segments += [(index[int(model.geom_bodyid[g])], len(bodies) + k) for k, g in enumerate(extra)]
    out = np.empty((qpos.shape[0], P, 3))
    for t in range(qpos.shape[0]):
        data.qpos[:] = qpos[t]
        mujoco.mj_kinematics(model, data)
        out[t, :len(bodies)] = data.xpos[bodies]
        out[t, len(bodies):] = data.geom_xpos[extra]
    return out, segments


def animate_replay(h5_path, out_gif, max_frames: int = 40, dpi: int = 70) -> dict:
    """Animated skeleton of a method's replay (coloured) over the reference
    (grey ghost), seen from the side (x-z) and the front (y-z), the camera
    following the reference root. Frames are subsampled to at most
    `max_frames`; playback is real time. Returns {"frames": shown frame
    indices, "fall_frame": k or -1, "fall_reason": the rule that fired or ""}."""
    from .model import load_model

    run = load_run(h5_path)
    if not run.has_replay:
        raise ValueError(f"{h5_path}: no replay to animate ({run.status})")
    model = load_model(float(run.attrs.get("physics_dt", 1 / 600)))
    ref_pts, segments = skeleton_points(model, run.ref_qpos)
    sim_pts, _ = skeleton_points(model, run.replay_qpos)
    n = ref_pts.shape[0]
    stride = max(1, math.ceil(n / max_frames))
    shown = np.arange(0, n, stride)
    dt = run.frame_dt if math.isfinite(run.frame_dt) else 1 / 30
    color = method_color(run.method)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.4), dpi=dpi, layout="constrained")
    views = (("side view (x-z)", 0), ("front view (y-z)", 1))
    artists = []
    for ax, (title, h) in zip(axes, views):
        ax.set_title(title, fontsize=10)
        ax.set_aspect("equal")
        ax.set_xlabel(f"{'xy'[h]} (m, following the reference root)", fontsize=9)
        ax.set_ylabel("z (m)", fontsize=9)
        ax.axhline(0.0, color="#8b5a2b", lw=2)  # floor
        ax.set_ylim(-0.05, 1.9)
        ghost = [ax.plot([], [], color="#b0b0b0", lw=4, solid_capstyle="round")[0] for _ in segments]
        sim = [ax.plot([], [], color=color, lw=2.2, solid_capstyle="round")[0] for _ in segments]
        artists.append((ax, h, ghost, sim))
    axes[0].plot([], [], color="#b0b0b0", lw=4, label="reference (ghost)")
    axes[0].plot([], [], color=color, lw=2.2, label=f"{run.method} replay")
    axes[0].legend(loc="upper left", fontsize=8)
    title = fig.suptitle("", fontsize=11)

    def draw(t):
        centre = ref_pts[t, 0]
        for ax, h, ghost, sim in artists:
            ax.set_xlim(centre[h] - 1.0, centre[h] + 1.0)
            for lines, pts in ((ghost, ref_pts[t]), (sim, sim_pts[t])):
                for line, (i, j) in zip(lines, segments):
                    line.set_data([pts[i, h], pts[j, h]], [pts[i, 2], pts[j, 2]])
        state = ""
        if 0 <= run.diverged_frame <= t:
            state = "  DIVERGED (frozen)"
        elif 0 <= run.fall_frame <= t:
            state = "  FALLEN"
        err = float(run.joint_err[t].mean())
        title.set_text(f"{run.attrs.get('clip', '')} / {run.method}: frame {t} ({t * dt:.2f} s), "
                       f"joint error {err:.2f} rad{state}")

    from PIL import Image

    images = []
    try:
        draw(int(shown[0]))
        fig.canvas.draw()
        # The layout is fixed after the first frame: re-solving it per frame
        # costs most of the time and would make the axes jitter.
        fig.set_layout_engine("none")
        for t in shown:
            draw(int(t))
            fig.canvas.draw()
            rgba = np.asarray(fig.canvas.buffer_rgba())
            images.append(Image.fromarray(rgba[..., :3].copy()).quantize(colors=64, dither=Image.Dither.NONE))
    finally:
        plt.close(fig)
    duration_ms = max(20, int(round(1000 * dt * stride)))
    with atomic_path(out_gif) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=duration_ms, loop=0)
    return {"frames": shown.tolist(), "fall_frame": run.fall_frame, "fall_reason": run.fall_reason}


def gif_page(gif_path, out_html, title: str, caption: str = "") -> None:
    """A standalone HTML page showing the GIF (embedded as base64): the
    Snakemake report displays HTML inline but offers a GIF only as a download."""
    import base64

    data = base64.b64encode(Path(gif_path).read_bytes()).decode()
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_HTML_STYLE}</style></head><body><h2>{html.escape(title)}</h2>"
            f"<img alt='{html.escape(title)}' src='data:image/gif;base64,{data}'>"
            f"<p>{html.escape(caption)}</p></body></html>\n")
    _write_text(out_html, page)
