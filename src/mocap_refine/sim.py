"""The one way to simulate: per-frame actions held over integer physics
substeps, rolled out with ``mujoco.rollout`` (C++ loop, optionally threaded).

Every method and every metric calls :func:`simulate_frames`, so a trajectory
that an optimiser saw is exactly the one the verifier replays. The model has
the constraint solver's warm start disabled (see README), so the next physics
state is a function of the current state and control alone, and a rollout
from the middle of a trajectory reproduces the full replay bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
from mujoco import rollout

STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS
# A physically meaningful humanoid never moves a joint faster than this
# (rad/s or m/s); past it the integration has blown up even if finite.
MAX_ABS_QVEL = 500.0


def state_size(model: mujoco.MjModel) -> int:
    return mujoco.mj_stateSize(model, STATE_SPEC)


def make_state(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray, time: float = 0.0) -> np.ndarray:
    """(nq,), (nv,) -> (nstate,) full physics state at `time` seconds."""
    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    data.qvel[:] = qvel
    data.time = time
    state = np.empty(state_size(model))
    mujoco.mj_getState(model, data, state, STATE_SPEC)
    return state


def split_state(model: mujoco.MjModel, states: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(..., nstate) -> time (...), qpos (..., nq), qvel (..., nv)."""
    nq, nv = model.nq, model.nv
    return states[..., 0], states[..., 1:1 + nq], states[..., 1 + nq:1 + nq + nv]


@dataclass
class Rollout:
    """Frame-level result of :func:`simulate_frames`.

    states: (B, T+1, nstate); states[:, 0] is the initial state.
    diverged_frame: (B,) first frame index whose state is invalid (non-finite,
        reset by MuJoCo's instability guard, or speeds above MAX_ABS_QVEL),
        -1 where the rollout stayed valid. States from that frame on are
        copies of the last valid state.
    """
    states: np.ndarray
    diverged_frame: np.ndarray


class DataPool:
    """MjData instances for threaded rollouts, one per thread; keep one per
    model and reuse it so repeated rollouts allocate nothing."""

    def __init__(self, model: mujoco.MjModel, threads: int = 1):
        self.threads = max(1, int(threads))
        self.datas = [mujoco.MjData(model) for _ in range(self.threads)]


def simulate_frames(model: mujoco.MjModel, state0: np.ndarray, actions: np.ndarray,
                    substeps: int, pool: DataPool | None = None) -> Rollout:
    """Roll out per-frame actions.

    state0: (nstate,) or (B, nstate) initial full physics states.
    actions: (T, nu) or (B, T, nu) controls in [-1, 1]; action t is held
        for `substeps` physics steps, taking frame t to frame t+1.
    Returns a Rollout with states (B, T+1, nstate).
    """
    state0 = np.atleast_2d(np.asarray(state0, dtype=float))
    actions = np.asarray(actions, dtype=float)
    if actions.ndim == 2:
        actions = actions[None]
    B = max(state0.shape[0], actions.shape[0])
    T = actions.shape[1]
    if T == 0:
        states = np.repeat(state0, B // state0.shape[0], axis=0)[:, None, :]
        return Rollout(states, np.full(B, -1))
    if pool is None:
        pool = DataPool(model, 1)
    control = np.repeat(actions, substeps, axis=1)
    datas = pool.datas if B > 1 else pool.datas[:1]
    # A persistent thread pool: creating one per call costs more than a
    # short batched rollout (feedback and mpc make thousands of them).
    raw, _ = rollout.rollout(model, datas, state0, control, persistent_pool=len(datas) > 1)
    frame_states = raw[:, substeps - 1::substeps, :]
    s0 = np.broadcast_to(state0, (B, state0.shape[1]))
    states = np.concatenate([s0[:, None, :], frame_states], axis=1)
    return Rollout(*_mark_divergence(model, states, raw, substeps))


def _mark_divergence(model, states, raw, substeps):
    B, T1, _ = states.shape
    dt = model.opt.timestep
    t0 = states[:, :1, 0]
    # MuJoCo resets the data (time -> 0) when accelerations blow up, so a
    # step whose time is not the previous time + dt marks a divergence.
    nstep = raw.shape[1]
    expected = t0 + dt * np.arange(1, nstep + 1)[None, :]
    # Written out instead of np.isclose (same result, NaN included): this
    # runs after every rollout, and isclose's generality costs more than
    # a short rollout's arithmetic.
    step_bad = ~(np.abs(raw[:, :, 0] - expected) <= dt * 1e-3)
    _, _, qvel = split_state(model, raw)
    step_bad |= ~np.isfinite(raw).all(axis=2)
    step_bad |= np.abs(np.nan_to_num(qvel, nan=np.inf)).max(axis=2) > MAX_ABS_QVEL
    diverged = np.full(B, -1)
    for b in np.nonzero(step_bad.any(axis=1))[0]:
        first_step = int(np.argmax(step_bad[b]))
        frame = first_step // substeps + 1
        diverged[b] = frame
        states[b, frame:] = states[b, frame - 1]
    return states, diverged
