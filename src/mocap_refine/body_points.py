"""Body points: a tracking cost on where the body is, not only on its angles.

The points are the centres of the humanoid's 15 body geoms (pelvis, chest,
head, arms, hands, legs, feet), spread over the body like the tracked sites
of MuJoCo MPC's humanoid tracking task. Per frame the residual is

    [ sqrt(w_centroid) * (c - c_ref)                      (3)
      sqrt(w_relative) * ((p_i - c) - (p_ref_i - c_ref))  (3 P)
      sqrt(w_velocity) * (pdot_i - pdot_ref_i) ]          (3 P)

with c the mean of the P points (m, m/s). A joint error near the root moves
every point beyond it, so the cost weighs each angle by how far it moves
the body, and a foot or hand placed wrong in the world costs directly.
Jacobians w.r.t. the state tangent (dq, dv) come from ``mj_jacGeom``: the
position rows are J_i dq, the velocity rows J_i dv (the J(q)-derivative of
the velocity rows is left out, a Gauss-Newton model).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np


@dataclass(frozen=True)
class PointWeights:
    centroid: float = 0.0   # per m^2
    relative: float = 0.0   # per m^2, each point relative to the centroid
    velocity: float = 0.0   # per (m/s)^2, each point

    @property
    def active(self) -> bool:
        return self.centroid > 0 or self.relative > 0 or self.velocity > 0


def point_geoms(model: mujoco.MjModel) -> np.ndarray:
    """Ids of the geoms whose centres are the tracked points (every geom on a body, not the floor)."""
    return np.nonzero(model.geom_bodyid > 0)[0]


def point_kinematics(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray, jacobians: bool = False):
    """qpos (..., nq), qvel (..., nv) -> positions (..., P, 3) m, velocities
    (..., P, 3) m/s and, with `jacobians`, J (..., P, 3, nv): d position /
    d qpos tangent (= d velocity / d qvel)."""
    geoms = point_geoms(model)
    lead = qpos.shape[:-1]
    q = qpos.reshape(-1, model.nq)
    v = qvel.reshape(-1, model.nv)
    P = len(geoms)
    pos = np.empty((q.shape[0], P, 3))
    vel = np.empty((q.shape[0], P, 3))
    J = np.empty((q.shape[0], P, 3, model.nv))
    data = mujoco.MjData(model)
    jacp = np.empty((3, model.nv))
    for k in range(q.shape[0]):
        data.qpos[:] = q[k]
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        pos[k] = data.geom_xpos[geoms]
        for i, g in enumerate(geoms):
            mujoco.mj_jacGeom(model, data, jacp, None, int(g))
            J[k, i] = jacp
        vel[k] = J[k] @ v[k]
    out = (pos.reshape(lead + (P, 3)), vel.reshape(lead + (P, 3)))
    return out + (J.reshape(lead + (P, 3, model.nv)),) if jacobians else out


def point_residual(pos: np.ndarray, vel: np.ndarray, pos_ref: np.ndarray, vel_ref: np.ndarray,
                   w: PointWeights) -> np.ndarray:
    """(..., P, 3) x 4 -> (..., 3 + 6P) weighted residual (module docstring)."""
    c, c_ref = pos.mean(axis=-2, keepdims=True), pos_ref.mean(axis=-2, keepdims=True)
    lead = pos.shape[:-2]
    return np.concatenate([
        np.sqrt(w.centroid) * (c - c_ref).reshape(lead + (3,)),
        np.sqrt(w.relative) * ((pos - c) - (pos_ref - c_ref)).reshape(lead + (-1,)),
        np.sqrt(w.velocity) * (vel - vel_ref).reshape(lead + (-1,)),
    ], axis=-1)


def point_residual_jacobian(J: np.ndarray, w: PointWeights) -> np.ndarray:
    """J (T, P, 3, nv) from :func:`point_kinematics` -> (T, 3 + 6P, 2nv)
    Jacobian of :func:`point_residual` w.r.t. the state tangent (dq, dv)."""
    T, P, _, nv = J.shape
    Jc = J.mean(axis=1)
    out = np.zeros((T, 3 + 6 * P, 2 * nv))
    out[:, :3, :nv] = np.sqrt(w.centroid) * Jc
    out[:, 3:3 + 3 * P, :nv] = np.sqrt(w.relative) * (J - Jc[:, None]).reshape(T, 3 * P, nv)
    out[:, 3 + 3 * P:, nv:] = np.sqrt(w.velocity) * J.reshape(T, 3 * P, nv)
    return out
