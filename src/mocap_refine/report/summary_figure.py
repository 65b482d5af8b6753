"""summary.png: every clip and method at a glance, readable at page width.

Three clip x method heat maps (err50_rad, root_drift50_m, tracked_fraction,
values written in the cells, fixed colour scales) and the cost of each
method, as a 2 x 2 grid whose width fits a 1366-pixel screen; the height
grows with the number of clips.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib import ticker

from .data import MISSING_STATUS, complete_table, diverged_frame, is_failed, read_metrics
from .style import DPI, log_axis, method_color, no_data, save_png

SUMMARY_WIDTH_IN = 12.8  # 1280 px at DPI: the page width of a 1366-pixel screen
# Fixed colour scales, so a colour means the same error in every run and a
# small spread between bad methods is not painted as good vs bad.
# 0.02 rad (about 1 degree) tracks as well as the clip's own noise; 1.5 rad
# is a humanoid lying on the floor.
ERR50_NORM = (0.02, 1.5)
DRIFT50_NORM = (0.01, 1.0)  # m: a centimetre vs a body width off


def summary_figsize(n_clips: int, n_methods: int) -> tuple[float, float]:
    """Inches of summary.png: page width; two rows of panels, each tall
    enough for one legible heat-map row per clip."""
    row = max(3.2, 0.38 * n_clips + 2.4)
    return (SUMMARY_WIDTH_IN, round(2 * row + 0.6, 2))


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
                ax.text(j, i, "failed", ha="center", va="center", fontsize=9, color="#aa0000")
                continue
            text = fmt(v) + ("\ndiverged" if diverged_frame(status[i, j]) >= 0 else "")
            r, g, b, _ = im.cmap(im.norm(v))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            ax.text(j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "black")
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods, rotation=30, ha="right")
    for tick, m in zip(ax.get_xticklabels(), methods):
        tick.set_color(method_color(m))
        tick.set_fontweight("bold")
    ax.set_yticks(range(len(clips)))
    ax.set_yticklabels(clips)
    ax.set_title(title, fontsize=11)
    cbar = ax.figure.colorbar(im, ax=ax, shrink=0.9, pad=0.02)
    if isinstance(norm, mcolors.LogNorm):
        cbar.ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        cbar.ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        cbar.ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def _wall_time_bars(ax, table, methods) -> None:
    wall = [pd.to_numeric(table.loc[table["method"] == m, "wall_s"], errors="coerce") for m in methods]
    totals = np.array([w.sum(min_count=1) for w in wall], dtype=float)
    # Median over clips of the cost in open-loop replays of the clip (NaN
    # for tables written before cost_replays existed: not shown).
    costs = [pd.to_numeric(table.loc[table["method"] == m, "cost_replays"], errors="coerce").median()
             for m in methods]
    if not np.isfinite(totals).any():
        no_data(ax, "no data: no wall_s values")
        return
    x = np.arange(len(methods))
    ax.bar(x, np.where(np.isfinite(totals), totals, 0.0), color=[method_color(m) for m in methods])
    trans = matplotlib.transforms.blended_transform_factory(ax.transData, ax.transAxes)
    for xi, t, w, c in zip(x, totals, wall, costs):
        if not np.isfinite(t):
            ax.text(xi, 0.02, "failed", transform=trans, ha="center", va="bottom", fontsize=9,
                    color="#aa0000")
            continue
        cost = f"\n{c:,.0f} replays" if np.isfinite(c) and c >= 10 else (
            f"\n{c:.2g} replays" if np.isfinite(c) else "")
        ax.annotate(f"{t:.3g} s\n({int(w.notna().sum())} clips){cost}", (xi, t), xytext=(0, 3),
                    textcoords="offset points", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(x)
    ax.set_xticklabels(methods, rotation=30, ha="right")
    pos = totals[np.isfinite(totals) & (totals > 0)]
    if len(pos) and pos.max() / pos.min() > 20:
        ax.set_yscale("log")
        ax.set_ylim(pos.min() / 3, pos.max() * 10)
        log_axis(ax)
    else:
        ax.set_ylim(0, (pos.max() if len(pos) else 1) * 1.5)
    ax.set_ylabel("wall time summed over clips (s)")
    ax.set_title("Cost: time to compute the actions (summed over clips;\n"
                 "under it the median over clips in open-loop replays of the clip)", fontsize=11)
    ax.grid(True, axis="y", which="major", alpha=0.3)


def plot_summary(summary_csv, out_png, methods=None, clips=None) -> dict:
    """summary.png from results/summary.csv; failed cells grey. Returns
    {"size_px": (w, h)}."""
    table = complete_table(read_metrics(summary_csv), methods, clips)
    methods = list(methods) if methods is not None else list(dict.fromkeys(table["method"]))
    clips = list(clips) if clips is not None else list(dict.fromkeys(table["clip"]))
    fig, axes = plt.subplots(2, 2, figsize=summary_figsize(len(clips), len(methods)), dpi=DPI,
                             layout="constrained")
    axes = axes.ravel()
    try:
        if not clips or not methods:
            for ax in axes:
                no_data(ax, "no data: summary.csv has no rows")
        else:
            _heatmap(axes[0], table, clips, methods, "err50_rad",
                     "err50_rad: mean joint error, frames 1-50\n(rad, lower is better)",
                     mcolors.LogNorm(*ERR50_NORM, clip=True), "RdYlGn_r", lambda v: f"{v:.2g}")
            _heatmap(axes[1], table, clips, methods, "root_drift50_m",
                     "root_drift50_m: root position error at frame 50\n(m, lower is better)",
                     mcolors.LogNorm(*DRIFT50_NORM, clip=True), "RdYlGn_r", lambda v: f"{v:.2g}")
            _heatmap(axes[2], table, clips, methods, "tracked_fraction",
                     "tracked_fraction: share of the clip before the fall\n(higher is better)",
                     mcolors.Normalize(0.0, 1.0), "RdYlGn", lambda v: f"{v:.2f}")
            _wall_time_bars(axes[3], table, methods)
        fig.suptitle("All clips: which method tracks best, and at what cost", fontsize=14)
        size = tuple(int(v) for v in fig.canvas.get_width_height())
        save_png(fig, out_png)
    finally:
        plt.close(fig)
    return {"size_px": size}
