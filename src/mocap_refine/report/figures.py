"""comparison.png: one clip's methods compared by open-loop replay.

Panels: joint error per frame (log), root path from above, error per joint
(log), optimiser progress, inverse dynamics' root residual, and a status
line per method. Legends sit under their panel, never over the data.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from .data import MethodRun, is_ok, load_runs, same_replay_as
from .style import DPI, REFERENCE_COLOR, legend_below, line_widths, log_axis, method_color, no_data, save_png

CLIP_FIGSIZE_IN = (15.0, 13.5)
GRAVITY_M_S2 = 9.81
BODY_MASS_KG = 45.0  # DeepMimic humanoid; used when a file has no body_weight_n
ERR_FLOOR_RAD = 1e-4  # log axes: exact frames or joints (error 0) are drawn at this floor


def reason(run: MethodRun) -> str:
    """" (contact)" etc.: the fall rule that fired, "" when unknown (files
    written before fall_reason existed) or "diverged" (said separately)."""
    why = run.fall_reason.strip()
    return f" ({why})" if why and why != "diverged" else ""


def fate(run: MethodRun) -> str:
    """"falls at 11 (contact), diverged at 77" / "falls at 8 (height)" / ""
    (tracks to the end)."""
    parts = []
    if run.fall_frame >= 0 and run.fall_frame != run.diverged_frame:
        parts.append(f"falls at {run.fall_frame}{reason(run)}")
    if run.diverged_frame >= 0:
        parts.append(f"diverged at {run.diverged_frame}")
    return ", ".join(parts)


def _replay_label(run: MethodRun, same: dict | None = None) -> str:
    parts = [fate(run)]
    if same and run.method in same:
        parts.append(f"same replay as {same[run.method]}")
    text = "; ".join(p for p in parts if p)
    return f"{run.method} ({text})" if text else run.method


def plot_joint_error(ax, runs) -> dict:
    """Mean joint error (rad, log axis) per frame for every method with a
    replay; each fall frame marked by a dashed vertical line and a triangle
    on the curve, each divergence by a cross. Returns {method: fall frame
    marked} (only methods that fall)."""
    marked = {}
    drawn = [r for r in runs if r.has_replay]
    if not drawn:
        no_data(ax, "no data: no method has a replay")
        return marked
    same = same_replay_as(drawn)
    for run, lw in zip(drawn, line_widths(len(drawn))):
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
    log_axis(ax)
    dt = drawn[0].frame_dt
    unit = f" ({dt * 1000:.1f} ms each)" if math.isfinite(dt) else ""
    ax.set_xlabel(f"frame{unit}")
    ax.set_ylabel("mean joint error (rad, log)")
    ax.set_title("Open-loop replay: joint error per frame\n"
                 "dashed line + triangle: fall (root height off > 0.25 m, root rotation off > 60 deg,\n"
                 "or a body other than the feet on the floor where the reference's is not); "
                 "X: physics diverged")
    ax.grid(True, which="both", alpha=0.3)
    legend_below(ax, ncol=3, fontsize=9)
    return marked


def plot_root_path(ax, runs) -> None:
    """Root x-y path seen from above: reference (black, dashed) and every
    method's replay; circle: start, triangle: fall."""
    drawn = [r for r in runs if r.has_replay]
    if not drawn:
        no_data(ax, "no data: no method has a replay")
        return
    ref = drawn[0].ref_qpos
    ax.plot(ref[:, 0], ref[:, 1], color=REFERENCE_COLOR, ls="--", lw=2.2, label="reference")
    ax.plot(ref[0, 0], ref[0, 1], "o", color=REFERENCE_COLOR, ms=7)
    for run, lw in zip(drawn, line_widths(len(drawn))):
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
    legend_below(ax, ncol=2)


def plot_joint_bars(ax, runs) -> None:
    """Mean error per joint over frames 1..T, one bar per method per joint,
    on a log axis: a method 100 times better than another stays visible."""
    drawn = [r for r in runs if r.has_replay]
    if not drawn:
        no_data(ax, "no data: no method has a replay")
        return
    names = drawn[0].joint_names or tuple(f"joint {j}" for j in range(drawn[0].joint_err.shape[1]))
    x = np.arange(len(names))
    width = 0.8 / len(drawn)
    lowest = np.inf
    for k, run in enumerate(drawn):
        per_joint = np.maximum(run.joint_err[1:].mean(axis=0), ERR_FLOOR_RAD)
        lowest = min(lowest, per_joint.min())
        ax.bar(x - 0.4 + (k + 0.5) * width, per_joint, width, color=method_color(run.method),
               label=run.method)
    ax.set_yscale("log")
    ax.set_ylim(bottom=lowest / 5)  # the shortest bar stands clear of the axis
    log_axis(ax)
    ax.set_xticks(x)
    ax.set_xticklabels([n.replace("_", " ") for n in names], rotation=30, ha="right", fontsize=9)
    ax.set_ylabel("mean error over frames 1..T (rad, log)")
    ax.set_title("Error per joint (open-loop replay, whole clip)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    legend_below(ax, ncol=min(len(drawn), 6), below=0.34)  # under the slanted joint names


HISTORY_SENTENCE = ("Each point is one row of a method's history: one pass\n"
                    "over the clip (feedback, adam), one window (gradient, track)\n"
                    "or the loss so far (mpc). The last point is the full clip's loss.")


def plot_history(ax, runs) -> None:
    """Progress of the iterative methods: tracking loss (log) per history
    row; falls back to err_full_rad when a history has no loss."""
    title = "Optimiser progress (the shared tracking loss)"
    with_hist = [r for r in runs if r.history]
    if not with_hist:
        no_data(ax, "no data: none of these methods is iterative\n(no /history in the result files)")
        ax.set_title(title)
        return
    keys = set()
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
        keys.add(key)
    if not keys:
        no_data(ax, "no data: histories have no loss or err_full_rad column")
        return
    if all(np.all(np.asarray(r.history.get("loss", r.history.get("err_full_rad", [1]))) > 0)
           for r in with_hist):
        log_axis(ax)
    ax.set_xlabel("history row")
    ax.set_ylabel("tracking loss" if keys == {"loss"} else " / ".join(sorted(keys)))
    ax.set_title(f"{title}\n{HISTORY_SENTENCE}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    legend_below(ax, ncol=3)


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
            no_data(ax, "no data: no inverse-dynamics result\n(/invdyn/root_wrench)")
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
        log_axis(ax)
        ax.set_xlabel("frame")
        ax.set_ylabel(f"|root residual {what}| ({unit})")
        ax.grid(True, which="both", alpha=0.3)
        legend_below(ax, ncol=2)
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
                     else f"ok, falls at frame {run.fall_frame}{reason(run)}")
        elif run.diverged_frame >= 0:
            state = f"DIVERGED at frame {run.diverged_frame}"
            if 0 <= run.fall_frame < run.diverged_frame:
                state += f", falls at {run.fall_frame}{reason(run)}"
        else:
            state = "FAILED: no result"
        err = run.attrs.get("err50_rad")
        extra = f"\nerr50 {float(err):.3g} rad" if err is not None else ""
        if run.method in same:
            extra += f", same replay as {same[run.method]}"
        ax.text(0.02, 1 - (k + 0.5) / n, f"{run.method}: {state}{extra}", transform=ax.transAxes,
                color=method_color(run.method), fontsize=10, va="center", fontweight="bold")


def clip_figure(runs, clip: str):
    """(figure, {method: fall frame marked}) of one clip's runs; the caller
    closes the figure."""
    fig, axes = plt.subplot_mosaic(
        [["err", "err", "path"], ["joint", "joint", "hist"], ["force", "torque", "status"]],
        figsize=CLIP_FIGSIZE_IN, dpi=DPI, layout="constrained")
    marked = plot_joint_error(axes["err"], runs)
    plot_root_path(axes["path"], runs)
    plot_joint_bars(axes["joint"], runs)
    plot_history(axes["hist"], runs)
    plot_invdyn(axes["force"], axes["torque"], runs)
    plot_status(axes["status"], runs)
    fig.suptitle(f"Clip {clip}: methods compared by open-loop replay", fontsize=15)
    return fig, marked


def plot_clip(h5_paths, out_png, clip: str | None = None) -> dict:
    """comparison.png for one clip from its result files.

    h5_paths: list of results/{clip}/{method}.h5 or dict method -> path
    (missing files are shown as failed). Returns {"fall_frames": {method:
    frame marked}, "size_px": (width, height)}.
    """
    runs = load_runs(h5_paths)
    if clip is None:
        clip = next((str(r.attrs["clip"]) for r in runs if "clip" in r.attrs), "?")
    fig, marked = clip_figure(runs, clip)
    try:
        size = tuple(int(v) for v in fig.canvas.get_width_height())
        save_png(fig, out_png)
    finally:
        plt.close(fig)
    return {"fall_frames": marked, "size_px": size}
