"""Baseline: DeepMimic-gain PD torques toward the next reference frame."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from ..model import layout
from ..problem import TrackingProblem
from . import MethodResult


@dataclass(frozen=True)
class BaselineSettings:
    """The baseline has no settings: its gains are DeepMimic's (mocap_refine.model)."""


def pd_actions(model: mujoco.MjModel, qpos_ref: np.ndarray, qvel_ref: np.ndarray) -> np.ndarray:
    """(N, nq), (N, nv) -> (N-1, nu): tau_t = kp (q_ref[t+1] - q_ref[t]) -
    kd qdot_ref[t] with DeepMimic's gains, the position difference taken in
    the joint's tangent space (local rotation vector for ball joints), divided
    by the torque limit and clipped to [-1, 1]."""
    lay = layout(model)
    T = qpos_ref.shape[0] - 1
    diff = np.zeros((T, model.nv))
    for t in range(T):
        mujoco.mj_differentiatePos(model, diff[t], 1.0, qpos_ref[t], qpos_ref[t + 1])
    tau = lay.kp * diff[:, lay.actuator_dof] - lay.kd * qvel_ref[:T][:, lay.actuator_dof]
    return np.clip(tau / lay.torque_limit, -1.0, 1.0)


def baseline(problem: TrackingProblem, settings: BaselineSettings, init_actions=None) -> MethodResult:
    """PD actions of the reference (init_actions is ignored)."""
    return MethodResult(pd_actions(problem.model, problem.ref.qpos, problem.ref.qvel))
