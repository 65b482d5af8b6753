"""The tracking objective the refinement methods minimise.

Per frame t, a residual vector in MuJoCo's tangent space

    r_t = [ sqrt(w_pos) * (q_t - q_ref_t)    (nv: qpos difference, mj_differentiatePos semantics)
            sqrt(w_vel) * (v_t - v_ref_t) ]   (nv)

with per-DoF weights: root position (plus an optional extra weight on its
height: horizontal drift is often forced by a clip the model cannot
reproduce, while a root that sinks is a fall), root orientation, actuated joints
(DeepMimic pose weights), and a smaller velocity weight. The loss of a
trajectory is sum_t |r_t|^2 over frames 1..T plus an effort term
w_effort * sum_t |a_t|^2 on the normalised actions. Every iterative method
reports this loss in its history, so their numbers are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from .model import HINGE_JOINTS, JOINTS, POSE_WEIGHT, layout


@dataclass(frozen=True)
class Weights:
    root_pos: float = 10.0      # per m^2
    root_height: float = 0.0    # per m^2, added to root_pos on the vertical axis
    root_rot: float = 2.0       # per rad^2
    joint: float = 2.0          # per rad^2, times the DeepMimic pose weight / 0.5
    vel: float = 0.01           # per (rad/s)^2, joint and root angular velocity
    root_vel: float = 0.01      # per (m/s)^2, root linear velocity
    effort: float = 1e-3        # per normalised action^2

    @classmethod
    def from_params(cls, params: dict | None) -> "Weights":
        params = params or {}
        kw = {k: float(params[f"w_{k}"]) for k in cls.__dataclass_fields__ if f"w_{k}" in params}
        return cls(**kw)


# What each weight means and its unit: the typed settings of every method
# that exposes the objective's weights (weight_settings) read them here.
WEIGHT_DOCS = {
    "root_pos": ("weight of the root position error", "1/m^2"),
    "root_height": ("extra weight of the root height error", "1/m^2"),
    "root_rot": ("weight of the root orientation error", "1/rad^2"),
    "joint": ("weight of the joint angle errors (times the DeepMimic pose weight / 0.5)", "1/rad^2"),
    "vel": ("weight of the joint and root angular velocity errors", "s^2/rad^2"),
    "root_vel": ("weight of the root linear velocity error", "s^2/m^2"),
    "effort": ("weight of the squared normalised actions", ""),
}


def weight_settings(**defaults: float) -> type:
    """A frozen settings base class with the objective's weights as typed
    settings ``w_<name>`` (meaning and unit from WEIGHT_DOCS), at the given
    defaults (the others: Weights' defaults), and a ``weights`` property."""
    from dataclasses import make_dataclass

    from .settings import setting
    unknown = set(defaults) - set(WEIGHT_DOCS)
    if unknown:
        raise TypeError(f"unknown weight(s) {sorted(unknown)}; known: {', '.join(WEIGHT_DOCS)}")
    base = Weights()
    fields = [(f"w_{name}", float, setting(float(defaults.get(name, getattr(base, name))), doc, minimum=0.0,
                                           unit=unit))
              for name, (doc, unit) in WEIGHT_DOCS.items()]

    def weights(self) -> Weights:
        return Weights(**{name: getattr(self, f"w_{name}") for name in WEIGHT_DOCS})
    return make_dataclass("WeightSettings", fields, frozen=True, namespace={"weights": property(weights)})


def dof_weights(model: mujoco.MjModel, w: Weights) -> tuple[np.ndarray, np.ndarray]:
    """(nv,) position weights and (nv,) velocity weights."""
    lay = layout(model)
    wp = np.zeros(model.nv)
    wp[0:3] = w.root_pos
    wp[2] += w.root_height
    wp[3:6] = w.root_rot
    for name, adr in zip(JOINTS, lay.dof_adr):
        k = 1 if name in HINGE_JOINTS else 3
        wp[adr:adr + k] = w.joint * POSE_WEIGHT[name] / 0.5
    wv = np.full(model.nv, w.vel)
    wv[0:3] = w.root_vel
    return wp, wv


def _subquat(q: np.ndarray, q_ref: np.ndarray) -> np.ndarray:
    """Rotation vector (local frame) of q_ref^-1 * q, (..., 4) -> (..., 3),
    the same quantity as MuJoCo's mju_subQuat(q, q_ref)."""
    shape = q.shape[:-1]
    r = Rotation.from_quat(q_ref.reshape(-1, 4), scalar_first=True).inv() * \
        Rotation.from_quat(q.reshape(-1, 4), scalar_first=True)
    return r.as_rotvec().reshape(shape + (3,))


def qpos_difference(model: mujoco.MjModel, qpos: np.ndarray, qpos_ref: np.ndarray) -> np.ndarray:
    """(..., nq), (..., nq) -> (..., nv): qpos "minus" qpos_ref in the tangent
    space, vectorised; equals mj_differentiatePos(model, out, 1, qpos_ref, qpos)."""
    lay = layout(model)
    qpos, qpos_ref = np.broadcast_arrays(qpos, qpos_ref)
    out = np.empty(qpos.shape[:-1] + (model.nv,))
    out[..., 0:3] = qpos[..., 0:3] - qpos_ref[..., 0:3]
    # All quaternion pairs (root and ball joints) in one scipy call: the
    # per-call overhead, not the arithmetic, dominates at these sizes.
    q_adr, d_adr = [3], [3]
    for name, qa, da in zip(JOINTS, lay.qpos_adr, lay.dof_adr):
        if name in HINGE_JOINTS:
            out[..., da] = qpos[..., qa] - qpos_ref[..., qa]
        else:
            q_adr.append(qa)
            d_adr.append(da)
    q_idx = np.array(q_adr)[:, None] + np.arange(4)
    rotvec = _subquat(qpos[..., q_idx], qpos_ref[..., q_idx])
    for k, da in enumerate(d_adr):
        out[..., da:da + 3] = rotvec[..., k, :]
    return out


def tracking_residual(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray,
                      qpos_ref: np.ndarray, qvel_ref: np.ndarray, w: Weights) -> np.ndarray:
    """(..., nq), (..., nv) vs reference -> (..., 2 nv) weighted residual."""
    wp, wv = dof_weights(model, w)
    dq = qpos_difference(model, qpos, qpos_ref)
    dv = qvel - qvel_ref
    return np.concatenate([np.sqrt(wp) * dq, np.sqrt(wv) * dv], axis=-1)


def tracking_loss(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray,
                  qpos_ref: np.ndarray, qvel_ref: np.ndarray, actions: np.ndarray,
                  w: Weights) -> np.ndarray:
    """Loss of trajectories: qpos (..., T+1, nq), qvel (..., T+1, nv) against
    the reference (T+1 frames), actions (..., T, nu) -> (...). Frame 0 is the
    start state and does not count."""
    r = tracking_residual(model, qpos[..., 1:, :], qvel[..., 1:, :], qpos_ref[1:], qvel_ref[1:], w)
    return np.sum(r ** 2, axis=(-1, -2)) + w.effort * np.sum(actions ** 2, axis=(-1, -2))
