"""Tracking errors, DeepMimic's imitation reward and the metric row.

Definitions (README "Metrics"): T actions take frame 0 to frame T.
joint error at a frame = mean over the 12 actuated joints of the rotation
angle between simulated and reference local joint rotation (geodesic angle
for ball joints, absolute angle difference for knees and elbows).
"""

from __future__ import annotations

import mujoco
import numpy as np

from .model import END_EFFECTORS, HINGE_JOINTS, JOINTS, POSE_WEIGHT, layout

FALL_HEIGHT_M = 0.25
METRIC_COLUMNS = (
    "clip", "method", "status", "frames", "frame_dt", "physics_dt", "wall_s",
    "single_step_err_rad", "err50_rad", "err_full_rad", "root_drift50_m",
    "root_drift_end_m", "reward_mean", "fall_frame", "tracked_fraction",
    "saturated_fraction",
)


def quat_angle(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Geodesic angle (rad) between unit quaternions (..., 4) -> (...)."""
    dot = np.abs(np.sum(q1 * q2, axis=-1))
    return 2.0 * np.arccos(np.clip(dot, 0.0, 1.0))


def joint_errors(model: mujoco.MjModel, qpos: np.ndarray, qpos_ref: np.ndarray) -> np.ndarray:
    """(T, nq), (T, nq) -> (T, 12) rotation angle (rad) per joint, JOINTS order."""
    lay = layout(model)
    out = np.empty(qpos.shape[:-1] + (len(JOINTS),))
    for j, (name, adr) in enumerate(zip(JOINTS, lay.qpos_adr)):
        if name in HINGE_JOINTS:
            out[..., j] = np.abs(qpos[..., adr] - qpos_ref[..., adr])
        else:
            out[..., j] = quat_angle(qpos[..., adr:adr + 4], qpos_ref[..., adr:adr + 4])
    return out


def root_errors(qpos: np.ndarray, qpos_ref: np.ndarray) -> np.ndarray:
    """(T, nq) -> (T,) distance (m) between simulated and reference root."""
    return np.linalg.norm(qpos[..., :3] - qpos_ref[..., :3], axis=-1)


def _kinematics(model, qpos, qvel):
    """Per frame: end effectors relative to the root in the heading frame
    (height kept absolute), and the centre-of-mass velocity."""
    data = mujoco.MjData(model)
    lay = layout(model)
    ee_ids = [lay.body_ids[n] for n in END_EFFECTORS]
    root = lay.body_ids["root"]
    T = qpos.shape[0]
    ee = np.empty((T, len(ee_ids), 3))
    com_vel = np.empty((T, 3))
    for t in range(T):
        data.qpos[:] = qpos[t]
        data.qvel[:] = qvel[t]
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        mujoco.mj_comVel(model, data)
        mujoco.mj_subtreeVel(model, data)
        fwd = data.xmat[root].reshape(3, 3)[:, 0]
        yaw = np.arctan2(fwd[1], fwd[0])
        c, s = np.cos(yaw), np.sin(yaw)
        rel = data.xpos[ee_ids] - data.xpos[root]
        ee[t, :, 0] = c * rel[:, 0] + s * rel[:, 1]
        ee[t, :, 1] = -s * rel[:, 0] + c * rel[:, 1]
        ee[t, :, 2] = data.xpos[ee_ids, 2]
        com_vel[t] = data.subtree_linvel[root]
    return ee, com_vel


def imitation_reward(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray,
                     qpos_ref: np.ndarray, qvel_ref: np.ndarray) -> np.ndarray:
    """DeepMimic's imitation reward per frame, in [0, 1] (DEEPMIMIC_FACTS.md).
    (T, nq), (T, nv) x 2 -> (T,). The 15 joints are the root, the 12 actuated
    joints and the two wrists (fixed, weight 0)."""
    lay = layout(model)
    w = np.array([POSE_WEIGHT[n] for n in JOINTS])
    theta = joint_errors(model, qpos, qpos_ref)
    root_angle = quat_angle(qpos[:, 3:7], qpos_ref[:, 3:7])
    pose_err = POSE_WEIGHT["root"] * root_angle ** 2 + (theta ** 2) @ w
    vel_err = POSE_WEIGHT["root"] * np.sum((qvel[:, 3:6] - qvel_ref[:, 3:6]) ** 2, axis=1)
    for j, (name, adr) in enumerate(zip(JOINTS, lay.dof_adr)):
        k = 1 if name in HINGE_JOINTS else 3
        vel_err += w[j] * np.sum((qvel[:, adr:adr + k] - qvel_ref[:, adr:adr + k]) ** 2, axis=1)
    ee, com_vel = _kinematics(model, qpos, qvel)
    ee_ref, com_vel_ref = _kinematics(model, qpos_ref, qvel_ref)
    n = 15
    r_pose = np.exp(-(2.0 / 15 * n) * pose_err)
    r_vel = np.exp(-(0.1 / 15 * n) * vel_err)
    r_end = np.exp(-10.0 * np.sum((ee - ee_ref) ** 2, axis=(1, 2)))
    root_pos = np.sum((qpos[:, :3] - qpos_ref[:, :3]) ** 2, axis=1)
    root_vel = np.sum((qvel[:, :3] - qvel_ref[:, :3]) ** 2, axis=1)
    root_angvel = np.sum((qvel[:, 3:6] - qvel_ref[:, 3:6]) ** 2, axis=1)
    r_root = np.exp(-5.0 * (root_pos + 0.1 * root_angle ** 2 + 0.01 * root_vel + 0.001 * root_angvel))
    r_com = np.exp(-10.0 * 0.1 * np.sum((com_vel - com_vel_ref) ** 2, axis=1))
    return (0.5 * r_pose + 0.05 * r_vel + 0.15 * r_end + 0.2 * r_root + 0.1 * r_com) / 1.0


def fall_frame(qpos: np.ndarray, qpos_ref: np.ndarray) -> int:
    """First frame whose root height differs from the reference by more than
    0.25 m; -1 if none."""
    off = np.abs(qpos[:, 2] - qpos_ref[:, 2]) > FALL_HEIGHT_M
    return int(np.argmax(off)) if off.any() else -1


def summary_metrics(joint_err: np.ndarray, root_err: np.ndarray, reward: np.ndarray,
                    fall: int, actions: np.ndarray, single_step_err: np.ndarray) -> dict:
    """Metric values from per-frame replay arrays.

    joint_err: (T+1, 12) rad; root_err: (T+1,) m; reward: (T+1,);
    fall: fall frame or -1; actions: (T, nu); single_step_err: (T,) rad,
    joint error at t+1 after one frame from the reference state of t.
    """
    T = joint_err.shape[0] - 1
    per_frame = joint_err.mean(axis=1)
    k50 = min(50, T)
    return {
        "single_step_err_rad": float(np.mean(single_step_err)),
        "err50_rad": float(per_frame[1:k50 + 1].mean()),
        "err_full_rad": float(per_frame[1:].mean()),
        "root_drift50_m": float(root_err[k50]),
        "root_drift_end_m": float(root_err[T]),
        "reward_mean": float(reward[1:].mean()),
        "fall_frame": int(fall),
        "tracked_fraction": float(1.0 if fall < 0 else (fall - 1) / T),
        "saturated_fraction": float(np.mean(np.abs(actions) >= 1.0 - 1e-9)),
    }
