"""Is a clip's motion physically possible on the feet it stands on?

For each frame, inverse dynamics of the reference with contacts disabled
(mj_inverse, accelerations by central differences of qvel) gives the wrench
the free root would need: the net external force and moment the ground must
supply. The point on the floor through which that wrench can act (the centre
of pressure, CoP) is printed next to the feet within 3 cm of the floor. When
the CoP lies far outside every supporting foot, no contact can supply the
motion and any physical tracker must drift from the clip.

Run: python benchmarks/support_check.py dance_a [--frames 40]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import mujoco
import numpy as np

from mocap_refine import pipeline
from mocap_refine.model import load_model
from mocap_refine.reference import lowest_points

FEET = ("right_foot", "left_foot")
SUPPORT_HEIGHT_M = 0.03


def required_cop(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray, qacc: np.ndarray):
    """Per frame: net ground force (N, world) and the CoP (x, y) on z = 0."""
    m = model
    data = mujoco.MjData(m)
    force, cop = [], []
    for t in range(qpos.shape[0]):
        data.qpos[:], data.qvel[:], data.qacc[:] = qpos[t], qvel[t], qacc[t]
        mujoco.mj_inverse(m, data)
        f = data.qfrc_inverse[:3].copy()
        moment = data.xmat[1].reshape(3, 3) @ data.qfrc_inverse[3:6]
        about_origin = moment + np.cross(data.xpos[1], f)
        # moment about c = (cx, cy, 0) has zero horizontal part
        cop.append((-about_origin[1] / f[2], about_origin[0] / f[2]) if f[2] > 1e-6 else (np.nan, np.nan))
        force.append(f)
    return np.array(force), np.array(cop)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip")
    ap.add_argument("--frames", type=int, default=40)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip_path = Path(tmp) / f"{args.clip}.txt"
        pipeline.import_clip(args.clip, clip_path)
        ref_h5 = Path(tmp) / "reference.h5"
        pipeline.prepare(clip_path, ref_h5, Path(tmp) / "diagnostics.csv")
        ref, _ = pipeline.load_reference(ref_h5)
    model = load_model(ref.physics_dt)
    model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT
    qacc = np.gradient(ref.qvel, ref.frame_dt, axis=0)
    force, cop = required_cop(model, ref.qpos, ref.qvel, qacc)
    data = mujoco.MjData(model)
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, g) for g in FEET]
    low = np.stack([lowest_points(model, ref.qpos, [g]) for g in FEET], axis=1)
    print(f"{'frame':>5} {'Fz_N':>7} {'cop_x':>7} {'cop_y':>7}  supporting feet (x, y) and CoP distance (m)")
    for t in range(min(args.frames, ref.n_frames)):
        data.qpos[:] = ref.qpos[t]
        mujoco.mj_kinematics(model, data)
        feet = [(FEET[k], data.geom_xpos[ids[k], :2]) for k in range(2) if low[t, k] < SUPPORT_HEIGHT_M]
        text = "  ".join(f"{n}({p[0]:.2f},{p[1]:.2f}) d={np.linalg.norm(p - cop[t]):.2f}" for n, p in feet) or "airborne"
        print(f"{t:5d} {force[t, 2]:7.0f} {cop[t, 0]:7.2f} {cop[t, 1]:7.2f}  {text}")


if __name__ == "__main__":
    main()
