"""Inverse dynamics: the actions a reference trajectory needs, frame by frame,
and the residual root wrench that measures how physically impossible it is.

Two stages:

1. Discrete inverse dynamics (``mj_inverse`` with MuJoCo's
   ``mjENBL_INVDISCRETE`` flag) on the reference, at the physics timestep.
   With that flag ``mj_inverse`` inverts the integrator's own step (for
   implicitfast: the implicit joint damping), so for one physics step per
   frame it recovers the simulator's controls exactly (to ~1e-12, checked in
   tests/test_invdyn.py). The frame-level acceleration is
   (qvel[t+1] - qvel[t]) / frame_dt. Its free-joint part is the root wrench
   stored per frame, computed with and without ground contact.

2. The frame solve (``frame_solve: true``). A frame spans `substeps` physics
   steps with the action held constant, so stage 1 at one instant cannot see
   inside the frame. For each frame t we solve for the constant action that
   carries the reference state of frame t to the reference state of frame
   t+1 in the actuated DoFs (qpos in the tangent space and qvel): bounded
   Gauss-Newton on the frame map, started from stage 1's torques, Jacobian by
   central finite differences from one batched ``simulate_frames`` call, step
   by bounded linear least squares (actions stay in [-1, 1]), backtracking
   line search. A frame stops when its step stalls or its residual falls by
   less than 1% in an iteration (the floor of its smooth piece; on real
   mocap iterations past that bought < 1% of residual at 3x the time on
   dance_a).
   Frames that do not converge are then restarted from their neighbours'
   solutions and, where neighbours converged, from the midpoint and the
   linear and quadratic extrapolations of their actions
   (``restart_from_neighbours``); each frame keeps its lowest-residual
   candidate (info ``frames_improved_by_restart``: how many frames a
   restart won). The root is unactuated, so on real mocap a residual
   remains: ``invdyn/frame_residual``.

Known limit of the frame solve: ground contacts switch on and off between
substeps (a contact onset removes most of the approach speed in one physics
step), so the frame map is only piecewise smooth, with jumps where a
touchdown or lift-off moves by one substep. Gauss-Newton converges to the
exact action when it starts inside the smooth piece that holds it and
otherwise stops at the best point of a neighbouring piece. Where a foot
chatters on the floor (corners touching down 1e-6 to 4e-5 m deep and lifting
again within a frame) the map is rugged and that piece tiny: on
generate_trajectory(0.3 s, seed 0) frame 0 the straight line from the known
action to the solve's answer (0.062 away) crosses 43 jumps, the residual
rising to 0.95 rad/s between two ends of 0 and 0.16, and the piece holding
the answer ends 1.1e-3 from it. No local start reaches it; a condensed
multiple-shooting solve over the 20 substeps (intermediate states as
unknowns, mjd_transitionFD per substep, tried and not kept) stopped at the
same point. Measured with ``python benchmarks/invdyn_known_answer.py``
(generate_trajectory 1 s, seeds 0-3, 120 frames): every frame whose contact
set stays the same through its substeps comes back exactly (in contact
17/17, airborne 14/14); of the frames with contacts switching inside them
47/89 do. The other 42 stop at an action error of 0.07 (median; max 0.32)
and a qpos residual RMS of 5e-4 rad (median; max 1e-2 rad). So on real mocap
a frame residual below about 1e-2 rad may be the solve's floor rather than
the clip's impossibility; the real clips' medians are 1.3e-3 (jump) to
5e-2 rad (backflip), and 8 of 15 lie below 5e-3 (results/*/invdyn.h5).

Where each frame's solve starts (setting ``start``):
    reference (default): from the reference state at frame t. This is the
        honest inverse dynamics: "what would each frame need", independent of
        what happened before; frames are independent and solved in one batch.
        Open-loop replay of these actions drifts as soon as one frame's
        residual is non-zero, which is the point of the diagnostic.
    simulated: from the simulated state reached by the already-solved
        actions (a sequential, tracking-like forward pass: a one-frame
        deadbeat controller). Each frame's solve starts from the
        reference-start answer and from the previous frame's solved action
        (one batch). Same known answer on simulator-made data. Measured:
        it tracks far better open loop (dance_a err50 0.014 rad, root drift
        0.42 m, fall at frame 62, 37 s; walk 0.016 rad, 0.17 m, no fall,
        27 s) than the reference start (falls at frames 12 and 10), but it
        is then a tracking controller, not a diagnostic of the clip.

Datasets (T = frames - 1):
    invdyn/root_wrench            (T, 6) force (N, world) and torque (N m,
                                  world axes, about the root origin) the free
                                  joint would need, with ground contact
    invdyn/root_wrench_nocontact  (T, 6) the same with contacts disabled
    invdyn/contact_force          (T, 3) total ground force on the body (N,
                                  world), from stage 1 with contact
    invdyn/torque_inverse         (T, nu) stage 1 actuator torques (N m),
                                  before clipping and the frame solve
    invdyn/frame_residual         (T, 2) RMS over the 28 actuated DoFs of the
                                  frame solve's error at t+1: qpos (rad) and
                                  qvel (rad/s)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import mujoco
import numpy as np
from scipy.optimize import lsq_linear
from scipy.signal import butter, filtfilt

from ..clip import finite_difference_qvel
from ..model import layout
from ..objective import qpos_difference
from ..problem import TrackingProblem
from ..settings import setting
from ..sim import DataPool, make_state, simulate_frames, split_state
from . import MethodResult

SMOOTHING = ("none", "butterworth")
STARTS = ("reference", "simulated")
# Central-difference steps (normalised action units) the frame solve moves
# between: from 1e-6 (1e-4 N m at a 100 N m limit: far above the solver's
# 1e-10 tolerance noise, so the slope of one smooth piece of the frame map
# to ~1e-10) up to 3e-2 (the slope across the small jumps contact onsets
# cause; see _solve_chunk).
FD_LADDER = (1e-6, 1e-4, 1e-3, 1e-2, 3e-2)
FD_START = 1e-2
# Frames per batched rollout: (nu + 1) rollouts per frame, so ~1000 rollouts
# (about 12 MB of substep states at 20 substeps) per call.
CHUNK_FRAMES = 36
LINE_SEARCH = (1.0, 0.5, 0.25, 0.1)
STEP_TOL = 1e-12
SLOW_DECREASE = 1e-2
# A frame whose residual RMS (rad/s) is below this carries frame t to t+1
# exactly (to the contact solver's tolerance); no restart can improve it.
CONVERGED_RMS = 1e-9


# ---------------------------------------------------------------- settings

@dataclass(frozen=True)
class InvdynSettings:
    smoothing: str = setting("none", "filter applied to the reference before inverse dynamics: none, or "
                             "butterworth (zero-lag, 4th order effective)", choices=SMOOTHING)
    smoothing_cutoff_hz: float = setting(6.0, "cutoff frequency of the butterworth smoothing (below the "
                                         "clip's Nyquist frequency)", exclusive_minimum=0.0, unit="Hz")
    frame_solve: bool = setting(True, "solve each frame's constant action that carries frame t to t+1 over "
                                "the frame's substeps; false: mj_inverse's torques, clipped")
    start: str = setting("reference", "where each frame's solve starts: reference (the reference state at "
                         "frame t; pure inverse dynamics) or simulated (the state the solved actions reached; "
                         "a tracking-like forward pass)", choices=STARTS)
    solve_iterations: int = setting(12, "Gauss-Newton iterations per frame of the frame solve",
                                    minimum=0, maximum=1000)


# ---------------------------------------------------------------- smoothing

def smooth_qpos(model: mujoco.MjModel, qpos: np.ndarray, frame_dt: float,
                cutoff_hz: float, order: int = 2) -> np.ndarray:
    """Zero-phase low-pass Butterworth filter of a trajectory, (N, nq) -> (N, nq).

    The standard filter for human motion capture (Winter, Biomechanics and
    Motor Control of Human Movement: 4th-order zero-lag Butterworth, cutoff
    around 6 Hz): a 2nd-order Butterworth run forward and backward
    (``filtfilt``), so the effective order is 4 and there is no phase lag.
    Positions are filtered per coordinate; quaternions are first made
    sign-continuous (q and -q are the same rotation), filtered per component
    and renormalised, which is accurate for the small frame-to-frame
    rotations of mocap.
    """
    nyquist = 0.5 / frame_dt
    if not 0 < cutoff_hz < nyquist:
        raise ValueError(f"smoothing_cutoff_hz {cutoff_hz} must lie in (0, {nyquist:g}) Hz, "
                         f"the Nyquist frequency of a {frame_dt:.6g} s frame")
    q = np.array(qpos, dtype=float)
    N = q.shape[0]
    if N < 4:
        return q
    free, ball = int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_BALL)
    quat_adr = [int(model.jnt_qposadr[j]) + (3 if int(model.jnt_type[j]) == free else 0)
                for j in range(model.njnt) if int(model.jnt_type[j]) in (free, ball)]
    for a in quat_adr:
        quat = q[:, a:a + 4]
        flip = np.cumprod(np.where(np.sum(quat[1:] * quat[:-1], axis=1) < 0, -1.0, 1.0))
        quat[1:] *= flip[:, None]
    b, a_coef = butter(order, cutoff_hz / nyquist)
    padlen = min(3 * max(len(a_coef), len(b)), N - 1)
    out = filtfilt(b, a_coef, q, axis=0, padlen=padlen)
    for a in quat_adr:
        out[:, a:a + 4] /= np.linalg.norm(out[:, a:a + 4], axis=1, keepdims=True)
    return out


# ---------------------------------------------------------------- stage 1

def _with_flags(model: mujoco.MjModel, contacts: bool) -> mujoco.MjModel:
    m = copy.deepcopy(model)
    m.opt.enableflags |= int(mujoco.mjtEnableBit.mjENBL_INVDISCRETE)
    if not contacts:
        m.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_CONTACT)
    return m


def discrete_inverse(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray, frame_dt: float,
                     contacts: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Discrete inverse dynamics per frame.

    qpos (N, nq), qvel (N, nv) -> qfrc_inverse (N-1, nv) (N or N m per DoF,
    MuJoCo's generalised forces: free joint force in world axes, torque in
    root-local axes), root_wrench (N-1, 6) (force N and torque N m, both in
    world axes, about the root origin) and contact_force (N-1, 3) total
    ground force on the body (N, world). Frame t uses the state of frame t
    and the acceleration (qvel[t+1] - qvel[t]) / frame_dt, at the model's
    physics timestep with ``mjENBL_INVDISCRETE`` so the integrator's implicit
    terms are inverted as well.
    """
    m = _with_flags(model, contacts)
    d = mujoco.MjData(m)
    T = qpos.shape[0] - 1
    qfrc = np.zeros((T, model.nv))
    wrench = np.zeros((T, 6))
    contact = np.zeros((T, 3))
    f6 = np.zeros(6)
    for t in range(T):
        d.qpos[:] = qpos[t]
        d.qvel[:] = qvel[t]
        d.qacc[:] = (qvel[t + 1] - qvel[t]) / frame_dt
        mujoco.mj_inverse(m, d)
        qfrc[t] = d.qfrc_inverse
        rot = np.empty(9)
        mujoco.mju_quat2Mat(rot, qpos[t, 3:7])
        wrench[t, :3] = d.qfrc_inverse[:3]
        wrench[t, 3:] = rot.reshape(3, 3) @ d.qfrc_inverse[3:6]
        for i in range(d.ncon):
            con = d.contact[i]
            mujoco.mj_contactForce(m, d, i, f6)
            # Contact frame rows: normal (from geom1 to geom2), tangents; the
            # force is the one geom1 exerts on geom2. Sign it onto the body.
            world = con.frame.reshape(3, 3).T @ f6[:3]
            body_is_geom2 = m.geom_bodyid[con.geom2] != 0
            contact[t] += world if body_is_geom2 else -world
    return qfrc, wrench, contact


# ---------------------------------------------------------------- stage 2

def _frame_residual(model, lay, states_end, qpos_target, qvel_target, frame_dt):
    """(..., nstate) end states vs targets -> (..., 2 * n_act) residual in
    rad/s: actuated tangent qpos error / frame_dt, actuated qvel error."""
    _, qp, qv = split_state(model, states_end)
    dq = qpos_difference(model, qp, np.broadcast_to(qpos_target, qp.shape))[..., lay.actuator_dof]
    dv = (qv - qvel_target)[..., lay.actuator_dof]
    return np.concatenate([dq / frame_dt, dv], axis=-1)


def solve_frames(model: mujoco.MjModel, states0: np.ndarray, qpos_target: np.ndarray,
                 qvel_target: np.ndarray, actions0: np.ndarray, substeps: int, frame_dt: float,
                 pool: DataPool, iterations: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame, the constant action in [-1, 1] that best carries states0[f]
    to (qpos_target[f], qvel_target[f]) in the actuated DoFs.

    states0 (F, nstate), qpos_target (F, nq), qvel_target (F, nv),
    actions0 (F, nu) start -> actions (F, nu), residual (F, 2 * n_act)
    (rad/s, see _frame_residual) and end states (F, nstate) of the returned
    actions. Frames are independent and solved together, chunked so that each
    Jacobian is one batched simulate_frames call of (nu + 1) rollouts per
    frame.
    """
    F = states0.shape[0]
    actions = np.clip(np.array(actions0, dtype=float), -1.0, 1.0)
    residual = [np.zeros((0, 2 * model.nu))]
    end = np.zeros_like(states0)
    for lo in range(0, F, CHUNK_FRAMES):
        sl = slice(lo, min(F, lo + CHUNK_FRAMES))
        actions[sl], r, end[sl] = _solve_chunk(
            model, states0[sl], qpos_target[sl], qvel_target[sl], actions[sl],
            substeps, frame_dt, pool, iterations)
        residual.append(r)
    return actions, np.concatenate(residual), end


def _solve_chunk(model, states0, qpos_t, qvel_t, actions, substeps, frame_dt, pool, iterations):
    lay = layout(model)
    nu = model.nu
    F = states0.shape[0]

    def evaluate(idx, acts):
        """acts (n, k, nu) for frames idx -> residuals (n, k, n_res), end states."""
        n, k = acts.shape[:2]
        out = simulate_frames(model, np.repeat(states0[idx], k, axis=0), acts.reshape(n * k, 1, nu),
                              substeps, pool)
        end = out.states[:, 1].reshape(n, k, -1)
        return _frame_residual(model, lay, end, qpos_t[idx][:, None], qvel_t[idx][:, None], frame_dt), end

    everything = np.arange(F)
    r, end = evaluate(everything, actions[:, None])
    r, end = r[:, 0], end[:, 0]
    cost = np.sum(r ** 2, axis=1)
    active = np.ones(F, dtype=bool)
    level = np.full(F, FD_LADDER.index(FD_START))
    eye = np.eye(nu)
    for _ in range(iterations):
        idx = np.nonzero(active)[0]
        if idx.size == 0:
            break
        n = idx.size
        a = actions[idx]
        h = np.array(FD_LADDER)[level[idx]][:, None, None] * eye
        # Central differences with a per-frame step that shrinks with the
        # Gauss-Newton steps (continuation). Contacts switching on and off
        # inside a frame make the frame map piecewise smooth with tiny jumps,
        # so a small step reads the slope of one tiny piece; a large step
        # reads the slope across many, which is what moves a far iterate.
        # The simulator clamps ctrl to [-1, 1], hence the clipped sides.
        up = np.minimum(a[:, None, :] + h, 1.0)                                   # (n, nu, nu)
        down = np.maximum(a[:, None, :] - h, -1.0)
        r_pm, _ = evaluate(idx, np.concatenate([up, down], axis=1))
        width = np.diagonal(up - down, axis1=1, axis2=2)                         # (n, nu)
        jac = (r_pm[:, :nu] - r_pm[:, nu:]) / width[..., None]                   # (n, nu, n_res)
        steps = np.zeros((n, nu))
        for k, f in enumerate(idx):
            steps[k] = lsq_linear(jac[k].T, -r[f], bounds=(-1.0 - a[k], 1.0 - a[k]), method="bvls").x
        cand = np.clip(a[:, None, :] + np.array(LINE_SEARCH)[None, :, None] * steps[:, None, :], -1.0, 1.0)
        r_c, end_c = evaluate(idx, cand)
        cost_c = np.sum(r_c ** 2, axis=2)
        best = np.argmin(cost_c, axis=1)
        for k, f in enumerate(idx):
            b = best[k]
            if cost_c[k, b] < cost[f]:
                moved = np.abs(cand[k, b] - actions[f]).max()
                slow = cost_c[k, b] > (1.0 - SLOW_DECREASE) * cost[f]
                actions[f], r[f], end[f], cost[f] = cand[k, b], r_c[k, b], end_c[k, b], cost_c[k, b]
                # Near convergence the small difference step gives the
                # exact slope of the current piece.
                level[f] = min(level[f], int(np.searchsorted(FD_LADDER, 0.3 * moved)))
                # Inside the piece that holds an exact answer the decrease is
                # quadratic; a crawl means the iterate is at the floor of its
                # piece (every real-mocap frame): more iterations buy < 1%.
                if moved < STEP_TOL or slow:
                    active[f] = False
            elif level[f] + 1 < len(FD_LADDER):
                # Stalled: the iterate may sit at the minimum of a piece that
                # does not hold the solution. A wider difference step reads
                # the slope across the neighbouring pieces and steps over.
                level[f] += 1
            else:
                active[f] = False
    return actions, r, end


def _neighbour_starts(actions: np.ndarray, converged: np.ndarray, t: int) -> list[np.ndarray]:
    """Starts for frame t built from its neighbours' actions (nu,) each:
    both neighbours' actions, and where runs of neighbours are converged
    (exact on simulator-made data), the midpoint of t - 1 and t + 1 and the
    linear and quadratic extrapolations from either side. Actions are smooth
    in time, so these land closer to frame t's answer than a neighbour's
    action does (measured: benchmarks/invdyn_known_answer.py)."""
    F = actions.shape[0]
    a = actions

    def ok(*frames):
        return all(0 <= i < F and converged[i] for i in frames)

    starts = [a[i] for i in (t - 1, t + 1) if 0 <= i < F]
    if ok(t - 1, t + 1):
        starts.append(0.5 * (a[t - 1] + a[t + 1]))
    for s in (-1, 1):
        if ok(t + s, t + 2 * s):
            starts.append(2.0 * a[t + s] - a[t + 2 * s])
        if ok(t + s, t + 2 * s, t + 3 * s):
            starts.append(3.0 * a[t + s] - 3.0 * a[t + 2 * s] + a[t + 3 * s])
    return [np.clip(x, -1.0, 1.0) for x in starts]


def restart_from_neighbours(model: mujoco.MjModel, states0: np.ndarray, qpos_target: np.ndarray,
                            qvel_target: np.ndarray, actions: np.ndarray, residual: np.ndarray,
                            end: np.ndarray, substeps: int, frame_dt: float, pool: DataPool,
                            iterations: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Second and later starts of the frame solve, from the neighbouring
    frames' solutions, for consecutive frames t = 0..F-1 solved from fixed
    start states (frame t's answer does not depend on the other frames).

    states0 (F, nstate), qpos_target (F, nq), qvel_target (F, nv), and the
    first solve's actions (F, nu), residual (F, 2 * n_act), end (F, nstate)
    -> the same three with each frame's lowest-residual candidate, and the
    number of frames a restart improved.

    Actions are smooth in time, so a start built from frame t +- 1's answer
    (see _neighbour_starts) often lies in the smooth piece of frame t's map
    that holds frame t's answer when ``mj_inverse``'s torques do not. Round 1
    restarts every frame that is not converged from its neighbours, all in
    one batch; each later round restarts the unconverged frames next to a
    converged one from the starts not tried yet, so an exact answer
    propagates along a run of failed frames (backward and forward sweeps at
    once). On real mocap no frame converges, so only round 1 runs.
    """
    F = actions.shape[0]
    actions, residual, end = actions.copy(), residual.copy(), end.copy()
    cost = np.sum(residual ** 2, axis=1)
    converged_cost = residual.shape[1] * CONVERGED_RMS ** 2
    improved = np.zeros(F, dtype=bool)
    tried: set[tuple[int, bytes]] = set()
    todo = cost > converged_cost
    while todo.any():
        converged = cost <= converged_cost
        frame, starts = [], []
        for t in np.nonzero(todo)[0]:
            for x in _neighbour_starts(actions, converged, int(t)):
                key = (int(t), x.tobytes())
                if key not in tried:
                    tried.add(key)
                    frame.append(int(t))
                    starts.append(x)
        if not frame:
            break
        frame = np.array(frame)
        a, r, e = solve_frames(model, states0[frame], qpos_target[frame], qvel_target[frame],
                               np.array(starts), substeps, frame_dt, pool, iterations)
        for k, t in enumerate(frame):
            c = float(np.sum(r[k] ** 2))
            if c < cost[t]:
                actions[t], residual[t], end[t], cost[t] = a[k], r[k], e[k], c
                improved[t] = True
        newly = (cost <= converged_cost) & ~converged
        spread = np.zeros(F, dtype=bool)
        spread[:-1] |= newly[1:]
        spread[1:] |= newly[:-1]
        todo = spread & (cost > converged_cost)
    return actions, residual, end, int(improved.sum())


# ---------------------------------------------------------------- method

def invdyn(problem: TrackingProblem, settings: InvdynSettings,
           init_actions: np.ndarray | None = None) -> MethodResult:
    """Actions (T, nu) from inverse dynamics of the reference (see the module
    docstring). init_actions is ignored (inverse dynamics needs no warm start)."""
    model, ref = problem.model, problem.ref
    lay = layout(model)
    qpos, qvel = ref.qpos, ref.qvel
    if settings.smoothing == "butterworth":
        qpos = smooth_qpos(model, qpos, ref.frame_dt, settings.smoothing_cutoff_hz)
        qvel = finite_difference_qvel(model, qpos, ref.frame_dt)
    T = qpos.shape[0] - 1
    qfrc, wrench, contact = discrete_inverse(model, qpos, qvel, ref.frame_dt, contacts=True)
    _, wrench_free, _ = discrete_inverse(model, qpos, qvel, ref.frame_dt, contacts=False)
    torque = qfrc[:, lay.actuator_dof]
    actions = np.clip(torque / lay.torque_limit, -1.0, 1.0)
    pool = problem.pool
    if settings.smoothing == "none":
        states = problem.ref_states
    else:
        states = np.stack([make_state(model, qpos[t], qvel[t], t * ref.frame_dt) for t in range(T + 1)])
    # Without the solve the iteration count 0 only evaluates the residual of
    # the inverse-dynamics actions, so the diagnostic exists either way.
    iters = settings.solve_iterations if settings.frame_solve else 0
    restarted = 0
    actions, residual, end = solve_frames(model, states[:-1], qpos[1:], qvel[1:], actions,
                                          ref.substeps, ref.frame_dt, pool, iters)
    if iters:
        actions, residual, _, restarted = restart_from_neighbours(
            model, states[:-1], qpos[1:], qvel[1:], actions, residual, end,
            ref.substeps, ref.frame_dt, pool, iters)
    if iters and settings.start == "simulated":
        # Each frame from the simulated state, with two starts in one batch:
        # the reference-state answer (the exact one while the simulation
        # stays on the reference) and the previous frame's simulated answer.
        guess, restarted = actions.copy(), 0
        state = states[0]
        for t in range(T):
            starts = guess[t:t + 1] if t == 0 else np.stack([guess[t], actions[t - 1]])
            k = starts.shape[0]
            a, r, end = solve_frames(model, np.repeat(state[None], k, 0),
                                     np.repeat(qpos[t + 1:t + 2], k, 0), np.repeat(qvel[t + 1:t + 2], k, 0),
                                     starts, ref.substeps, ref.frame_dt, pool, iters)
            best = int(np.argmin(np.sum(r ** 2, axis=1)))
            actions[t], residual[t], state = a[best], r[best], end[best]
            restarted += int(best > 0)
    n = model.nu
    frame_residual = np.stack([
        np.sqrt(np.mean((residual[:, :n] * ref.frame_dt) ** 2, axis=1)),
        np.sqrt(np.mean(residual[:, n:] ** 2, axis=1)),
    ], axis=1)
    body_weight = float(np.sum(model.body_mass) * np.linalg.norm(model.opt.gravity))
    info = {
        "body_weight_n": body_weight,
        "root_force_nocontact_mean_n": float(np.linalg.norm(wrench_free[:, :3], axis=1).mean()) if T else 0.0,
        "root_force_mean_n": float(np.linalg.norm(wrench[:, :3], axis=1).mean()) if T else 0.0,
        "frame_residual_qpos_max_rad": float(frame_residual[:, 0].max()) if T else 0.0,
        "frames_improved_by_restart": restarted,
        "frame_residual_columns": ["qpos_rms_rad", "qvel_rms_rad_s"],
        "root_wrench_columns": ["fx_n", "fy_n", "fz_n", "tx_nm", "ty_nm", "tz_nm"],
    }
    datasets = {
        "invdyn/root_wrench": wrench,
        "invdyn/root_wrench_nocontact": wrench_free,
        "invdyn/contact_force": contact,
        "invdyn/torque_inverse": torque,
        "invdyn/frame_residual": frame_residual,
    }
    return MethodResult(actions, [], datasets, info)
