"""Verification of actions by open-loop replay in simulation."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from .metrics import (fall_check, imitation_reward, joint_errors, root_errors, root_rot_errors,
                      summary_metrics)
from .sim import DataPool, make_state, simulate_frames, split_state


@dataclass
class Verification:
    """Replay of T actions from the reference state of frame 0.

    qpos (T+1, nq), qvel (T+1, nv), joint_err (T+1, 12) rad, root_err (T+1,)
    m, reward (T+1,), single_step_err (T,) rad, diverged_frame (-1 if none),
    metrics: the metric values (METRIC_COLUMNS minus context columns),
    root_rot_err (T+1,) deg, fall_reason: criterion of metrics["fall_frame"]
    (metrics.FALL_REASONS, "" when it never falls).
    """
    qpos: np.ndarray
    qvel: np.ndarray
    joint_err: np.ndarray
    root_err: np.ndarray
    reward: np.ndarray
    single_step_err: np.ndarray
    diverged_frame: int
    metrics: dict
    root_rot_err: np.ndarray | None = None
    fall_reason: str = ""

    @property
    def status(self) -> str:
        return "ok" if self.diverged_frame < 0 else f"diverged at frame {self.diverged_frame}"


def reference_states(model: mujoco.MjModel, qpos_ref: np.ndarray, qvel_ref: np.ndarray,
                     frame_dt: float) -> np.ndarray:
    """(N, nq), (N, nv) -> (N, nstate) full physics states at each frame."""
    return np.stack([make_state(model, qpos_ref[t], qvel_ref[t], t * frame_dt)
                     for t in range(qpos_ref.shape[0])])


def verify(model: mujoco.MjModel, qpos_ref: np.ndarray, qvel_ref: np.ndarray,
           actions: np.ndarray, frame_dt: float, substeps: int, threads: int = 1) -> Verification:
    """Open-loop replay plus the single-step test (every frame started from
    its reference state, one action applied)."""
    T = actions.shape[0]
    if qpos_ref.shape[0] != T + 1:
        raise ValueError(f"{T} actions need {T + 1} reference frames, got {qpos_ref.shape[0]}")
    pool = DataPool(model, threads)
    ref_states = reference_states(model, qpos_ref, qvel_ref, frame_dt)
    full = simulate_frames(model, ref_states[0], actions, substeps, pool)
    _, qpos, qvel = split_state(model, full.states[0])
    diverged = int(full.diverged_frame[0])
    one = simulate_frames(model, ref_states[:-1], actions[:, None, :], substeps, pool)
    _, qpos_one, _ = split_state(model, one.states[:, 1])
    single = joint_errors(model, qpos_one, qpos_ref[1:]).mean(axis=1)
    single[one.diverged_frame >= 0] = np.pi
    joint_err = joint_errors(model, qpos, qpos_ref)
    root_err = root_errors(qpos, qpos_ref)
    root_rot_err = root_rot_errors(qpos, qpos_ref)
    reward = imitation_reward(model, qpos, qvel, qpos_ref, qvel_ref)
    fall = fall_check(model, qpos, qpos_ref)
    fall_at, reason = fall.frame, fall.reason
    # A divergence before any fall criterion ends the replay there: the
    # state is frozen from that frame on (sim.Rollout).
    if diverged >= 0 and (fall_at < 0 or diverged < fall_at):
        fall_at, reason = diverged, "diverged"
    metrics = summary_metrics(joint_err, root_err, reward, fall_at, actions, single,
                              root_rot_err=root_rot_err, fall_reason=reason)
    return Verification(qpos, qvel, joint_err, root_err, reward, single, diverged, metrics,
                        root_rot_err, reason)
