"""Comparison figures and tables for people who pick a method by looking.

Per clip (from ``results/{clip}/{method}.h5`` and ``comparison.csv``):
:func:`plot_clip` writes comparison.png, :func:`write_clip_tables`
comparison.html and comparison.md. Across clips (from ``summary.csv``):
:func:`plot_summary` writes summary.png, :func:`write_summary_tables`
summary.html and summary.md. :func:`plot_keyframes` writes replays.png (every
method's replay at key frames, the report's view of the replays) and
:func:`animate_replay` a method's full replay animation ({method}.gif, a file
the report names but does not embed).

Modules: ``data`` (files in, DataFrames and table views out), ``figures``
and ``summary_figure`` (matplotlib), ``keyframes``, ``animation``, ``html`` (Jinja2
templates) and ``markdown``. Both table formats are drawn from the same
table view; neither is parsed from the other.
"""

from __future__ import annotations

from .animation import ANIMATION_DPI, ANIMATION_FIGSIZE_IN, animate_replay, skeleton_points
from .data import (METRICS, MISSING_STATUS, MethodRun, best_rows, clip_context, clip_table, complete_table,
                   diverged_frame, is_failed, is_ok, load_run, load_runs, method_overview, read_metrics,
                   same_replay_as, table_view)
from .figures import (CLIP_FIGSIZE_IN, clip_figure, fate, plot_clip, plot_history, plot_invdyn,
                      plot_joint_bars, plot_joint_error, plot_root_path)
from .html import clip_page, summary_page, write_text
from .keyframes import KEYFRAMES, key_frames, keyframes_figsize, keyframes_figure, plot_keyframes
from .markdown import clip_markdown, summary_markdown
from .style import DPI, METHOD_COLORS, method_color
from .summary_figure import plot_summary, summary_figsize

CLIP_COLUMNS = ("method", "status", *METRICS)
SUMMARY_COLUMNS = ("clip", "method", "status", "frames", *METRICS)


def clip_tables(comparison_csv, clip: str, methods=None, h5_paths=None) -> dict:
    """One clip's table as DataFrame and view: {"table", "view", "title",
    "context"}; `h5_paths` marks methods whose result file is missing."""
    runs = load_runs(h5_paths) if h5_paths is not None else None
    table = clip_table(comparison_csv, clip, methods, runs)
    return {"table": table, "view": table_view(table, CLIP_COLUMNS), "title": f"{clip}: method comparison",
            "context": clip_context(table)}


def write_clip_tables(comparison_csv, out_html, out_md, clip: str, methods=None, h5_paths=None) -> None:
    """comparison.html and comparison.md of one clip."""
    t = clip_tables(comparison_csv, clip, methods, h5_paths)
    write_text(out_html, clip_page(t["title"], t["context"], t["view"]))
    write_text(out_md, clip_markdown(t["title"], t["context"], t["view"]))


def summary_tables(summary_csv, methods=None, clips=None) -> dict:
    """Every clip and method: {"table", "overview" (DataFrames), "full",
    "overview_view" (views), "title", "intro"}."""
    table = complete_table(read_metrics(summary_csv), methods, clips)
    overview = method_overview(table)
    return {"table": table, "overview": overview, "title": "Summary: every clip and method",
            "intro": f"{table['clip'].nunique()} clips x {table['method'].nunique()} methods.",
            "overview_view": table_view(overview, tuple(overview.columns)),
            "full": table_view(table, SUMMARY_COLUMNS, group="clip")}


def write_summary_tables(summary_csv, out_html, out_md, methods=None, clips=None) -> None:
    """summary.html and summary.md."""
    t = summary_tables(summary_csv, methods, clips)
    write_text(out_html, summary_page(t["title"], t["intro"], t["overview_view"], t["full"]))
    write_text(out_md, summary_markdown(t["title"], t["intro"], t["overview_view"], t["full"]))
