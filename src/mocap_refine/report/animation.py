"""{method}.gif: the replayed skeleton over the reference, big enough to see
a foot slide: side and front views that follow the reference root, and a
close-up of the feet seen from the side."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from ..io import atomic_path
from .data import load_run
from .style import method_color

ANIMATION_FIGSIZE_IN = (12.0, 8.4)
ANIMATION_DPI = 100  # 1200 x 840 px
FEET_VIEW_M = (1.0, 0.35)  # close-up: half width around the root, height above the floor
GHOST_COLOR = "#cccccc"


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


def animate_replay(h5_path, out_gif, max_frames: int = 40, dpi: int = ANIMATION_DPI) -> dict:
    """Animated skeleton of a method's replay (coloured) over the reference
    (grey ghost): side (x-z) and front (y-z) views following the reference
    root, and the feet close up from the side (where a foot slides). Frames
    are subsampled to at most `max_frames`; playback is real time. Returns
    {"frames": shown frame indices, "fall_frame": k or -1, "fall_reason":
    the rule that fired or ""}."""
    from PIL import Image

    from ..model import load_model

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
    fig, axes = plt.subplot_mosaic([["side", "front"], ["feet", "feet"]], height_ratios=[5.2, 2.2],
                                   figsize=ANIMATION_FIGSIZE_IN, dpi=dpi, layout="constrained")
    half, top = FEET_VIEW_M
    views = (("side", "side view (x-z)", 0, 1.0, (-0.05, 1.9)),
             ("front", "front view (y-z)", 1, 1.0, (-0.05, 1.9)),
             ("feet", "feet close up, side view (x-z): a foot that slides moves against the grey one", 0,
              half, (-0.02, top)))
    artists, lines = [], []
    for key, title, h, width, ylim in views:
        ax = axes[key]
        ax.set_title(title, fontsize=11)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel(f"{'xy'[h]} (m, relative to the reference root)", fontsize=10)
        ax.set_ylabel("z (m)", fontsize=10)
        ax.axhline(0.0, color="#8b5a2b", lw=2)  # floor
        ax.set_xlim(-width, width)
        ax.set_ylim(*ylim)
        ghost = [ax.plot([], [], color=GHOST_COLOR, lw=5, solid_capstyle="round", animated=True)[0]
                 for _ in segments]
        sim = [ax.plot([], [], color=color, lw=2.6, solid_capstyle="round", animated=True)[0] for _ in segments]
        artists.append((h, ghost, sim))
        lines += ghost + sim
    side = axes["side"]
    side.plot([], [], color=GHOST_COLOR, lw=5, label="reference (ghost)")
    side.plot([], [], color=color, lw=2.6, label=f"{run.method} replay")
    side.legend(loc="upper left", bbox_to_anchor=(0.0, -0.12), ncol=2, fontsize=9, frameon=False)
    title = fig.suptitle("", fontsize=12)

    def draw(t):
        centre = ref_pts[t, 0]
        for h, ghost, sim in artists:
            for lines_, pts in ((ghost, ref_pts[t]), (sim, sim_pts[t])):
                for line, (i, j) in zip(lines_, segments):
                    line.set_data([pts[i, h] - centre[h], pts[j, h] - centre[h]], [pts[i, 2], pts[j, 2]])
        state = ""
        if 0 <= run.diverged_frame <= t:
            state = "  DIVERGED (frozen)"
        elif 0 <= run.fall_frame <= t:
            state = "  FALLEN"
        err = float(run.joint_err[t].mean())
        title.set_text(f"{run.attrs.get('clip', '')} / {run.method}: frame {t} ({t * dt:.2f} s), "
                       f"joint error {err:.2f} rad{state}")

    images = []
    try:
        draw(int(shown[0]))
        fig.canvas.draw()
        # The axes are fixed (the views move with the reference root by
        # drawing relative to it), so they are drawn once and only the
        # skeletons and the title are drawn per frame (blitting).
        fig.set_layout_engine("none")
        title.set_animated(True)
        fig.canvas.draw()
        background = fig.canvas.copy_from_bbox(fig.bbox)
        palette = None
        for t in shown:
            draw(int(t))
            fig.canvas.restore_region(background)
            for artist in lines + [title]:
                fig.draw_artist(artist)
            frame = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
            # One palette for the whole GIF, from its first frame: frames
            # keep their colours and quantising by a fixed palette is quick.
            if palette is None:
                palette = frame.quantize(colors=64, dither=Image.Dither.NONE)
            images.append(frame.quantize(palette=palette, dither=Image.Dither.NONE))
    finally:
        plt.close(fig)
    duration_ms = max(20, int(round(1000 * dt * stride)))
    with atomic_path(out_gif) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=duration_ms, loop=0)
    return {"frames": shown.tolist(), "fall_frame": run.fall_frame, "fall_reason": run.fall_reason}
