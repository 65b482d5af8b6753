"""replays.png: one clip's replays at a glance, small enough for the report.

A grid of side views, one row per method and one column per key frame
(evenly spaced from the first frame to the last): the replayed skeleton in the
method's colour over the reference as a grey ghost, FALLEN / DIVERGED on the
panels from that frame on. The full animations ({method}.gif,
:func:`animate_replay`) stay files next to it that the report's caption
names: embedded (as HTML pages, the report shows no GIFs inline) they made a
15-clip report about 60 MB.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from .animation import GHOST_COLOR, skeleton_points
from .data import load_runs
from .figures import fate
from .style import DPI, method_color, save_png

KEYFRAMES = 6
KEYFRAME_PANEL_IN = (2.0, 2.3)  # width, height of one side view
KEYFRAME_HALF_WIDTH_M = 0.8  # x range around the reference root
KEYFRAME_HEIGHT_M = (-0.05, 1.9)
FLOOR_COLOR = "#8b5a2b"


def key_frames(n_frames: int, count: int = KEYFRAMES) -> list:
    """`count` frame indices evenly spaced over 0..n_frames-1, first and last
    included (fewer when the clip is shorter)."""
    if n_frames < 1:
        return []
    return sorted({int(round(v)) for v in np.linspace(0, n_frames - 1, min(count, n_frames))})


def keyframes_figsize(n_methods: int, n_columns: int = KEYFRAMES) -> tuple:
    """(width, height) inches of the grid: one panel per method and key frame."""
    w, h = KEYFRAME_PANEL_IN
    return (w * n_columns + 0.6, h * max(n_methods, 1) + 0.7)


def _draw_skeleton(ax, pts, segments, h: int, **style) -> None:
    for i, j in segments:
        ax.plot([pts[i, h], pts[j, h]], [pts[i, 2], pts[j, 2]], solid_capstyle="round", **style)


def keyframes_figure(runs, clip: str, count: int = KEYFRAMES):
    """(figure, {"frames": key frames, "rows": methods}) of one clip's runs;
    the caller closes the figure."""
    from ..model import load_model

    with_replay = [r for r in runs if r.has_replay]
    n = with_replay[0].ref_qpos.shape[0] if with_replay else 1
    frames = key_frames(n, count)
    cols = max(len(frames), 1)
    fig, axes = plt.subplots(len(runs), cols, figsize=keyframes_figsize(len(runs), cols), dpi=DPI,
                             squeeze=False, layout="constrained")
    frame_dt = with_replay[0].frame_dt if with_replay else float("nan")
    frame_dt = frame_dt if math.isfinite(frame_dt) else 1 / 30
    for col, t in enumerate(frames):
        axes[0, col].set_title(f"frame {t} ({t * frame_dt:.2f} s)", fontsize=9)
    models, ref = {}, None
    for row, run in enumerate(runs):
        color = method_color(run.method)
        # One line per event: a rotated label longer than the row's height
        # ran into the next row's (seen at page width in Chromium).
        label = run.method + "".join(f"\n{part}" for part in fate(run).split(", ") if part and run.has_replay)
        if not run.has_replay:
            label += "\nno replay"
        axes[row, 0].set_ylabel(label, color=color, fontsize=10, fontweight="bold")
        if not run.has_replay:
            # The status (why) across the row, which has nothing else to show.
            for ax in axes[row, 1:]:
                ax.set_axis_off()  # no background over the text
            axes[row, 0].set_xticks([])
            axes[row, 0].set_yticks([])
            for spine in axes[row, 0].spines.values():
                spine.set_visible(False)
            why = axes[row, 0].text(0.05, 0.5, run.status, transform=axes[row, 0].transAxes, ha="left",
                                    va="center", fontsize=10, color="#555555", clip_on=False)
            why.set_in_layout(False)  # runs across the row's empty panels
            continue
        dt = float(run.attrs.get("physics_dt", 1 / 600))
        if dt not in models:
            models[dt] = load_model(dt)
        if ref is None:
            ref = skeleton_points(models[dt], run.ref_qpos[frames])
        ref_pts, segments = ref
        # A replay cut short (never written so by evaluate, but a foreign
        # file may be) shows its last frame.
        last = run.replay_qpos.shape[0] - 1
        sim_pts, _ = skeleton_points(models[dt], run.replay_qpos[[min(t, last) for t in frames]])
        for col, t in enumerate(frames):
            ax = axes[row, col]
            centre = ref_pts[col, 0, 0]
            ax.axhline(0.0, color=FLOOR_COLOR, lw=1.5)
            _draw_skeleton(ax, ref_pts[col], segments, 0, color=GHOST_COLOR, lw=4)
            _draw_skeleton(ax, sim_pts[col], segments, 0, color=color, lw=1.8)
            ax.set_xlim(centre - KEYFRAME_HALF_WIDTH_M, centre + KEYFRAME_HALF_WIDTH_M)
            ax.set_ylim(*KEYFRAME_HEIGHT_M)
            ax.set_aspect("equal", adjustable="box")
            off = sim_pts[col, 0, 0] - centre
            if abs(off) > KEYFRAME_HALF_WIDTH_M:
                # Drifted out of the view that follows the reference: say where.
                text = f"{off:+.1f} m >" if off > 0 else f"< {off:+.1f} m"
                ax.text(1.0 if off > 0 else 0.0, 0.5, text, transform=ax.transAxes, fontsize=8, color=color,
                        ha="right" if off > 0 else "left", va="center", fontweight="bold")
            ax.set_xticks([])
            ax.tick_params(labelsize=7)
            if col:
                ax.set_yticks([])
            state = ("DIVERGED" if 0 <= run.diverged_frame <= t
                     else "FALLEN" if 0 <= run.fall_frame <= t else "")
            if state:
                ax.text(0.03, 0.97, state, transform=ax.transAxes, ha="left", va="top", fontsize=8,
                        color="#b00000", fontweight="bold", gid=f"state:{run.method}:{t}")
    fig.suptitle(f"Clip {clip}: side views of each method's replay (colour) over the reference (grey)",
                 fontsize=12)
    return fig, {"frames": frames, "rows": [r.method for r in runs]}


def plot_keyframes(h5_paths, out_png, clip: str | None = None, count: int = KEYFRAMES) -> dict:
    """replays.png for one clip from its result files (missing files: a row
    that says so). Returns {"frames", "rows", "size_px"}."""
    runs = load_runs(h5_paths)
    if clip is None:
        clip = next((str(r.attrs["clip"]) for r in runs if "clip" in r.attrs), "?")
    fig, info = keyframes_figure(runs, clip, count)
    try:
        info["size_px"] = tuple(int(v) for v in fig.canvas.get_width_height())
        save_png(fig, out_png)
    finally:
        plt.close(fig)
    return info
