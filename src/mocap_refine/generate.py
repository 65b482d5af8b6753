"""Known-answer data: trajectories the simulator itself produced.

The humanoid starts standing on the floor and is driven for about a second by
per-frame actions: a PD hold of the standing pose plus smooth random torques,
computed once per frame and held over the frame's substeps, exactly as every
method's actions are. The returned qpos and qvel are the simulator's own
states at the frame boundaries, so inverse dynamics must recover the actions
and a replay must reproduce the states.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
from scipy.ndimage import gaussian_filter1d

from .clip import qpos_to_frames, write_clip
from .model import JOINTS, layout, load_model, substeps_for
from .reference import Reference, lowest_points
from .sim import DataPool, make_state, simulate_frames, split_state


# Period (s) of the PD loop DeepMimic's gains were tuned for (1.2 kHz).
HOLD_GAIN_DT = 1.0 / 1200.0


@dataclass
class Generated:
    """qpos (N, nq), qvel (N, nv), actions (N-1, nu) in [-1, 1]."""
    qpos: np.ndarray
    qvel: np.ndarray
    actions: np.ndarray
    frame_dt: float
    physics_dt: float
    substeps: int

    def reference(self) -> Reference:
        """The trajectory as a Reference, for methods to track."""
        return Reference(self.qpos, self.qvel, self.frame_dt, self.physics_dt, self.substeps)


def standing_qpos(model: mujoco.MjModel) -> np.ndarray:
    """Upright pose, knees and elbows slightly bent, lowest point on z = 0."""
    lay = layout(model)
    q = model.qpos0.copy()
    for name, adr in zip(JOINTS, lay.qpos_adr):
        if name.endswith("knee"):
            q[adr] = -0.15
        elif name.endswith("elbow"):
            q[adr] = 0.3
    q[2] = 0.0
    q[2] = -lowest_points(model, q[None])[0]
    return q


def generate_trajectory(seconds: float = 1.0, frame_dt: float = 1.0 / 30.0, seed: int = 0,
                        physics_hz: float = 600.0, noise: float = 0.15) -> Generated:
    """Simulate the humanoid from standing under per-frame actions (PD hold
    of the standing pose plus Gaussian-smoothed random torques of std about
    `noise` in normalised units), with ground contact. Deterministic in seed."""
    substeps, physics_dt = substeps_for(frame_dt, physics_hz)
    model = load_model(physics_dt)
    lay = layout(model)
    n_actions = max(1, int(round(seconds / frame_dt)))
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((n_actions + 8, model.nu))
    smooth = gaussian_filter1d(white, sigma=2.0, axis=0)[4:4 + n_actions]
    smooth *= noise / max(smooth.std(), 1e-12)
    q_stand = standing_qpos(model)
    state = make_state(model, q_stand, np.zeros(model.nv))
    pool = DataPool(model)
    data = mujoco.MjData(model)
    qpos = [q_stand]
    qvel = [np.zeros(model.nv)]
    actions = np.zeros((n_actions, model.nu))
    err = np.zeros(model.nv)
    # DeepMimic's gains are tuned for a PD loop run at 1.2 kHz. Evaluated once
    # per frame and held (h = 33 ms at 30 Hz) they make an unstable discrete
    # loop (kd h / I >> 2 for forearms and feet): the "hold" saturated 93% of
    # actions and drove joints to 200 rad/s. Scaling the gains by the ratio of
    # the two loop periods keeps kd h, hence the loop, as DeepMimic had it.
    gain_scale = min(1.0, HOLD_GAIN_DT / frame_dt)
    kp, kd = gain_scale * lay.kp, gain_scale * lay.kd
    for t in range(n_actions):
        mujoco.mj_differentiatePos(model, err, 1.0, qpos[-1], q_stand)
        tau = kp * err[lay.actuator_dof] - kd * qvel[-1][lay.actuator_dof]
        actions[t] = np.clip(tau / lay.torque_limit + smooth[t], -1.0, 1.0)
        out = simulate_frames(model, state, actions[t:t + 1], substeps, pool)
        if out.diverged_frame[0] >= 0:
            raise RuntimeError("generator diverged; lower the noise")
        state = out.states[0, -1]
        _, qp, qv = split_state(model, state)
        qpos.append(qp.copy())
        qvel.append(qv.copy())
    del data
    return Generated(np.array(qpos), np.array(qvel), actions, frame_dt, physics_dt, substeps)


CONTACT_CLASSES = ("switching", "contact", "airborne")


def frame_contact_classes(model: mujoco.MjModel, gen: Generated) -> np.ndarray:
    """(T,) what the ground contacts do inside each frame of a replay of the
    known actions, one physics step at a time:

        switching   the set of active contacts (geom pairs, counted) changes
                    between substeps: a foot corner touches down or lifts off
                    inside the frame, so the frame map is only piecewise
                    smooth around the answer (see methods/invdyn.py)
        contact     the same contacts are active at every substep
        airborne    no contact at any substep
    """
    T, n = gen.actions.shape[0], gen.substeps
    state0 = make_state(model, gen.qpos[0], gen.qvel[0])
    # One action per physics step, so the rollout returns every substep's
    # state; states[k] is the state before physics step k.
    out = simulate_frames(model, state0, np.repeat(gen.actions, n, axis=0), 1)
    _, qpos, qvel = split_state(model, out.states[0, :-1])
    data = mujoco.MjData(model)
    classes = []
    for t in range(T):
        sets = []
        for k in range(t * n, (t + 1) * n):
            data.qpos[:], data.qvel[:] = qpos[k], qvel[k]
            mujoco.mj_forward(model, data)
            sets.append(sorted(zip(data.contact.geom1.tolist(), data.contact.geom2.tolist())))
        if any(s != sets[0] for s in sets):
            classes.append("switching")
        else:
            classes.append("contact" if sets[0] else "airborne")
    return np.array(classes)


def write_generated_clip(path, seconds: float = 1.0, frame_dt: float = 1.0 / 30.0, seed: int = 0,
                         physics_hz: float = 600.0) -> Generated:
    """Generate a trajectory and write its poses as a DeepMimic clip (Y-up)."""
    gen = generate_trajectory(seconds, frame_dt, seed, physics_hz)
    model = load_model(gen.physics_dt)
    write_clip(path, qpos_to_frames(model, gen.qpos, frame_dt), loop="none")
    return gen
