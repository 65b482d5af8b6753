"""track: receding-horizon Gauss-Newton tracking with reused frame Jacobians.

From the simulated state at the start of a window of ``horizon_s`` seconds,
the window's actions minimise the tracking loss of its frames
(``objective.tracking_residual`` plus the effort term) by Levenberg-Marquardt
steps; the first ``commit_s`` seconds are committed and the window moves on.
The committed result is a plain open-loop action sequence, replayed exactly
by the verifier.

What makes it cheap and frame-rate independent:

* Actions are linear between knots ``knot_s`` apart (a knot per frame when
  frames are longer), so the unknowns per window do not grow with the frame
  rate.
* The window's Jacobian is chained from frame Jacobians A_t = df/dx,
  B_t = df/du (finite differences of whole frames, one batched rollout).
  A frame's Jacobians are computed once and reused, across iterations and
  across overlapping windows, until the frame's state or action has moved
  more than ``relinearize_tol`` from where they were taken. Each step is
  judged on real rollouts, so a stale Jacobian costs progress, never
  correctness.
* Each iteration tries a ladder of damping values in one batched rollout and
  keeps the best; a window stops when an iteration lowers its loss by less
  than ``tolerance`` (relative).

The start is the discrete inverse dynamics of the reference (the torques
that would produce each frame's reference acceleration, clipped to the
actuator limits; computed here in a few mj_inverse calls) unless ``init``
names another method's actions.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from ..derivatives import frame_jacobians, residual_jacobian, state_difference
from ..metrics import fall_frame, joint_errors
from ..model import layout
from ..objective import Weights, tracking_loss, tracking_residual
from ..problem import TrackingProblem
from ..settings import setting
from ..sim import split_state
from . import MethodResult

INIT_METHODS = ("baseline", "invdyn", "feedback", "gradient", "mpc")
DAMPING_LADDER = (0.1, 1.0, 10.0, 100.0)


@dataclass(frozen=True)
class TrackSettings:
    horizon_s: float = setting(0.3, "length of the planning window", exclusive_minimum=0.0, maximum=5.0, unit="s")
    commit_s: float = setting(0.1, "actions committed per window before it moves on",
                              exclusive_minimum=0.0, maximum=5.0, unit="s")
    knot_s: float = setting(1 / 30, "spacing of the action knots; actions are linear between knots",
                            exclusive_minimum=0.0, maximum=1.0, unit="s")
    iterations: int = setting(4, "Levenberg-Marquardt iterations per window at most", minimum=1, maximum=100)
    tolerance: float = setting(0.01, "a window stops when an iteration lowers its loss by less than this fraction",
                               minimum=0.0, maximum=1.0)
    relinearize_tol: float = setting(
        0.02, "a frame's Jacobians are recomputed when its state (tangent norm, velocities times the frame "
        "duration) or action has moved more than this since they were taken", minimum=0.0, maximum=10.0)
    damping: float = setting(1.0, "initial Levenberg-Marquardt damping, relative to the mean diagonal of J^T J",
                             exclusive_minimum=0.0, maximum=1e6)
    fd_eps: float = setting(1e-6, "finite-difference step of the frame Jacobians", exclusive_minimum=0.0, maximum=1e-2)
    w_root_pos: float = setting(10.0, "weight of the root position error", minimum=0.0, unit="1/m^2")
    w_root_height: float = setting(0.0, "extra weight of the root height error", minimum=0.0, unit="1/m^2")
    w_root_rot: float = setting(2.0, "weight of the root orientation error", minimum=0.0, unit="1/rad^2")
    w_joint: float = setting(2.0, "weight of the joint angle errors (times the DeepMimic pose weight / 0.5)",
                             minimum=0.0, unit="1/rad^2")
    w_vel: float = setting(0.01, "weight of the joint and root angular velocity errors", minimum=0.0,
                           unit="s^2/rad^2")
    w_root_vel: float = setting(0.01, "weight of the root linear velocity error", minimum=0.0, unit="s^2/m^2")
    w_effort: float = setting(1e-3, "weight of the squared normalised actions", minimum=0.0)
    init: str | None = setting(None, "method whose actions start the tracker; null: inverse dynamics of the "
                               "reference", choices=INIT_METHODS)

    def __post_init__(self):
        if self.commit_s > self.horizon_s:
            raise ValueError(f"commit_s ({self.commit_s}) must not exceed horizon_s ({self.horizon_s})")

    @property
    def weights(self) -> Weights:
        return Weights.from_params({k: v for k, v in asdict(self).items() if k.startswith("w_")})


def frames_for(seconds: float, frame_dt: float) -> int:
    """Whole frames in `seconds` (at least 1)."""
    return max(1, int(round(seconds / frame_dt)))


def knot_matrix(n_frames: int, step: int) -> np.ndarray:
    """(n_frames, K) linear interpolation from K knots (at frames 0, step,
    2 step, ..., and the last frame) to every frame."""
    knots = list(range(0, n_frames, step))
    if knots[-1] != n_frames - 1:
        knots.append(n_frames - 1)
    M = np.zeros((n_frames, len(knots)))
    for i, (a, b) in enumerate(zip(knots[:-1], knots[1:])):
        s = np.arange(a, b + 1)
        frac = (s - a) / (b - a)
        M[s, i] = 1 - frac
        M[s, i + 1] = frac
    if len(knots) == 1:
        M[0, 0] = 1.0
    return M


def inverse_dynamics_actions(problem: TrackingProblem) -> np.ndarray:
    """(T, nu) actions from discrete inverse dynamics of the reference,
    clipped to [-1, 1] (root wrench dropped: the root is unactuated)."""
    from .invdyn import discrete_inverse
    model, ref = problem.model, problem.ref
    lay = layout(model)
    qfrc, _, _ = discrete_inverse(model, ref.qpos, ref.qvel, ref.frame_dt, contacts=True)
    return np.clip(qfrc[:, lay.actuator_dof] / lay.torque_limit, -1.0, 1.0)


class _JacobianCache:
    """Frame Jacobians of the whole clip with the (state, action) they were
    taken at; :meth:`get` recomputes only the frames that moved."""

    def __init__(self, problem: TrackingProblem, tol: float, eps: float):
        self.p, self.tol, self.eps = problem, tol, eps
        T, n, nu = problem.n_actions, 2 * problem.model.nv, problem.nu
        self.A = np.zeros((T, n, n))
        self.B = np.zeros((T, n, nu))
        self.x = np.full((T, problem.ref_states.shape[1]), np.nan)
        self.u = np.full((T, nu), np.nan)
        self.computed = 0
        self._scale = np.concatenate([np.ones(problem.model.nv), np.full(problem.model.nv, problem.ref.frame_dt)])

    def get(self, t0: int, states: np.ndarray, actions: np.ndarray):
        """A (W, n, n), B (W, n, nu) for frames t0..t0+W-1 at states (W, nstate), actions (W, nu)."""
        W = actions.shape[0]
        sl = slice(t0, t0 + W)
        stale = np.isnan(self.u[sl, 0])
        fresh = ~stale
        if fresh.any():
            dx = state_difference(self.p.model, states[fresh], self.x[sl][fresh]) * self._scale
            moved = np.maximum(np.linalg.norm(dx, axis=1),
                               np.linalg.norm(actions[fresh] - self.u[sl][fresh], axis=1)) > self.tol
            stale[np.nonzero(fresh)[0][moved]] = True
        idx = np.nonzero(stale)[0]
        if idx.size:
            A, B = frame_jacobians(self.p.model, states[idx], actions[idx], self.p.ref.substeps, self.p.pool, self.eps)
            self.A[t0 + idx], self.B[t0 + idx] = A, B
            self.x[t0 + idx], self.u[t0 + idx] = states[idx], actions[idx]
            self.computed += idx.size
        return self.A[sl], self.B[sl]


def _window_residuals(problem, states, actions, t0, w):
    """Stacked residuals (B, W * 2nv + W * nu) of rollouts states (B, W+1, nstate)
    with actions (B, W, nu) starting at frame t0."""
    W = actions.shape[1]
    ref = problem.ref
    _, q, v = split_state(problem.model, states[:, 1:])
    r = tracking_residual(problem.model, q, v, ref.qpos[t0 + 1:t0 + W + 1], ref.qvel[t0 + 1:t0 + W + 1], w)
    return np.concatenate([r.reshape(actions.shape[0], -1),
                           np.sqrt(w.effort) * actions.reshape(actions.shape[0], -1)], axis=1)


def _chained_jacobian(A, B, Jr, effort, M):
    """d(window residual)/d(knots): (W * 2nv + W * nu, K * nu) from frame
    Jacobians A (W, n, n), B (W, n, nu), residual Jacobians Jr (W, m, n)
    and the knot matrix M (W, K)."""
    W, n, nu = B.shape
    m = Jr.shape[1]
    G = np.zeros((W * m, W * nu))  # d residual / d per-frame actions
    for j in range(W):
        D = B[j]
        for k in range(j, W):
            if k > j:
                D = A[k] @ D
            G[k * m:(k + 1) * m, j * nu:(j + 1) * nu] = Jr[k] @ D
    Mk = np.kron(M, np.eye(nu))  # (W nu, K nu)
    return np.concatenate([G @ Mk, np.sqrt(effort) * Mk], axis=0)


def _track_window(problem, cache, state0, t0, actions, M, s: TrackSettings, w: Weights):
    """Levenberg-Marquardt on one window's knots. Returns (actions (W, nu),
    states (W+1, nstate), loss before, loss after, iterations)."""
    W, nu = actions.shape
    K = M.shape[1]
    knot_frames = np.argmax(M, axis=0)
    z = actions[knot_frames].copy()  # (K, nu)
    u = M @ z
    roll = problem.rollout(u[None], state0)
    x = roll.states[0]
    r = _window_residuals(problem, roll.states, u[None], t0, w)[0]
    loss0 = loss = float(r @ r) if roll.diverged_frame[0] < 0 else np.inf
    mu = s.damping
    its = 0
    for its in range(1, s.iterations + 1):
        A, B = cache.get(t0, x[:-1], u)
        _, Jr = residual_jacobian(problem.model, x[1:], problem.ref.qpos[t0 + 1:t0 + W + 1],
                                  problem.ref.qvel[t0 + 1:t0 + W + 1], w)
        J = _chained_jacobian(A, B, Jr, w.effort, M)
        g = J.T @ r
        H = J.T @ J
        scale = float(np.mean(np.diag(H))) or 1.0
        mus = mu * np.array(DAMPING_LADDER)
        cands = np.empty((len(mus), K, nu))
        for i, m in enumerate(mus):
            dz = np.linalg.solve(H + m * scale * np.eye(K * nu), -g)
            cands[i] = np.clip(z + dz.reshape(K, nu), -1.0, 1.0)
        U = np.einsum("fk,ckn->cfn", M, cands)
        rolls = problem.rollout(U, state0)
        R = _window_residuals(problem, rolls.states, U, t0, w)
        losses = np.sum(R ** 2, axis=1)
        losses[rolls.diverged_frame >= 0] = np.inf
        best = int(np.argmin(losses))
        if not losses[best] < loss:
            break
        gain = (loss - losses[best]) / loss
        z, u, x, r, loss = cands[best], U[best], rolls.states[best], R[best], float(losses[best])
        mu = float(np.clip(mus[best], 1e-6, 1e6))
        if gain < s.tolerance:
            break
    return u, x, loss0, loss, its


def track(problem: TrackingProblem, s: TrackSettings, init_actions=None) -> MethodResult:
    """Open-loop actions (T, nu) that track the reference (module docstring)."""
    t_start = time.perf_counter()
    model, ref = problem.model, problem.ref
    T = problem.n_actions
    w = s.weights
    if init_actions is None:
        init = inverse_dynamics_actions(problem)
    else:
        init = np.clip(np.asarray(init_actions, dtype=float), -1.0, 1.0)
        if init.shape != (T, model.nu):
            raise ValueError(f"track: init actions have shape {init.shape}, expected {(T, model.nu)}")
    horizon, commit = frames_for(s.horizon_s, ref.frame_dt), frames_for(s.commit_s, ref.frame_dt)
    commit = min(commit, horizon)
    knot_step = frames_for(s.knot_s, ref.frame_dt)
    cache = _JacobianCache(problem, s.relinearize_tol, s.fd_eps)
    actions = init.copy()
    state = problem.ref_states[0]
    history = []
    t0 = 0
    while t0 < T:
        W = min(horizon, T - t0)
        M = knot_matrix(W, knot_step)
        u, x, before, after, its = _track_window(problem, cache, state, t0, actions[t0:t0 + W], M, s, w)
        actions[t0:t0 + W] = u
        step = W if t0 + W >= T else commit
        history.append({"iteration": len(history), "window_start": t0, "window_loss_start": before,
                        "loss": after, "window_iterations": its, "jacobian_frames": cache.computed,
                        "seconds": time.perf_counter() - t_start})
        state = x[step]
        t0 += step
    final = _replay(problem, actions, w)
    start = _replay(problem, init, w)
    kept_init = (_up(start, T), -start["loss"]) > (_up(final, T), -final["loss"])
    if kept_init:
        actions, final = init, start
    history.append({"iteration": len(history), "loss": final["loss"], "err_full_rad": final["err_full_rad"],
                    "jacobian_frames": cache.computed, "seconds": time.perf_counter() - t_start})
    info = {"init_loss": start["loss"], "final_loss": final["loss"], "kept_init": bool(kept_init),
            "jacobian_frames": int(cache.computed), "horizon_frames": horizon, "commit_frames": commit,
            "knot_frames": knot_step}
    return MethodResult(actions, history, {}, info)


def _replay(problem, actions, w):
    roll = problem.rollout(actions)
    _, q, v = split_state(problem.model, roll.states[0])
    loss = float(tracking_loss(problem.model, q, v, problem.ref.qpos, problem.ref.qvel, actions, w))
    err = joint_errors(problem.model, q, problem.ref.qpos).mean(axis=1)
    fall = fall_frame(problem.model, q, problem.ref.qpos)
    diverged = int(roll.diverged_frame[0])
    if diverged >= 0:
        fall = diverged if fall < 0 else min(fall, diverged)
    return {"loss": loss, "err_full_rad": float(err[1:].mean()), "fall_frame": fall}


def _up(stats, T):
    return T + 1 if stats["fall_frame"] < 0 else stats["fall_frame"]
