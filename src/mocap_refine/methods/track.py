"""track: receding-horizon iLQR tracking of a reference trajectory.

From the simulated state at the start of a window of ``horizon_s`` seconds
(0.5 s, as MuJoCo MPC's humanoid tracking), the window's actions are
improved by iLQR: a Riccati backward pass on the linearised frame map gives
feedforward steps k_t and time-varying feedback gains K_t, and the forward
pass rolls the real physics out closed loop, ``u_t + alpha k_t + K_t (x_t -
x_nom_t)``, for several step sizes in one batch. The feedback keeps long
windows on a falling, contact-rich body tractable where open-loop steps
(Gauss-Newton on the window's actions) fail beyond about 0.2 s. The first
``commit_s`` seconds are committed and the window moves on; the committed
actions are what the closed-loop rollout applied, so they replay exactly
open loop. Every window starts from the configured regularisation (a new
problem), and the first, which starts cold, may take more iterations.

Cost: frame Jacobians A_t = df/dx, B_t = df/du, by default MuJoCo's
per-step ``mjd_transitionFD`` chained over each frame's substeps on a thread
pool (1.5-1.7 times faster than differencing whole frames), taken afresh every
iteration. ``relinearize_tol`` > 0 reuses them until a frame's state or
action has moved more than that from where they were taken. A window stops
when an iteration lowers its loss by less than ``tolerance`` (relative).

The loss is the tracking objective's, plus (``w_clearance``) the fall rule's
contact criterion as a cost (:mod:`mocap_refine.clearance`): a watched body
lower than the reference's near the floor. Rollouts the fall rule flags lose
to those it does not (``fall_aware``).

The windows recede to the end of the clip (they shrink there), so every
frame is planned the same way. The start is zero actions, so the first pass
of a window is the feedback law around the reference alone, unless
``start: inverse_dynamics`` (the reference's discrete inverse dynamics,
clipped to the actuator limits; held for a whole frame they overshoot at low
frame rates) or ``init`` names another method.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from ..body_points import PointWeights, point_kinematics, point_residual, point_residual_jacobian
from ..clearance import Clearance
from ..derivatives import chained_frame_jacobians, frame_jacobians, residual_jacobian, state_difference
from ..metrics import REFERENCE_CONTACT_MARGIN_M, fall_flags, fall_frame, joint_errors, reference_contact_near
from ..model import layout, smooth_contact_model
from ..objective import Weights, weight_settings, tracking_loss, tracking_residual
from ..problem import TrackingProblem
from ..settings import setting
from ..sim import DataPool, simulate_frames, split_state
from . import MethodResult

log = logging.getLogger(__name__)
INIT_METHODS = ("baseline", "invdyn", "feedback", "gradient", "mpc")
REGULARIZATION_FACTOR = 3.0   # mu / 3 after a successful step, mu * 9 before a retry
REGULARIZATION_TRIES = 4
MIN_REGULARIZATION, MAX_REGULARIZATION = 1e-6, 1e6


@dataclass(frozen=True)
class TrackSettings(weight_settings(root_pos=30.0)):
    # Velocity errors are weighed as the position error they make over one
    # frame, (v - v_ref) * frame_dt: the same weight means the same at any
    # frame rate, and noisy mocap velocities do not outweigh the poses.
    w_vel: float = setting(0.3, "weight of the joint and root angular velocity errors times the frame "
                           "duration (the angle they turn in one frame)", minimum=0.0, unit="1/rad^2")
    w_root_vel: float = setting(9.0, "weight of the root linear velocity error times the frame duration",
                                minimum=0.0, unit="1/m^2")
    velocity_per_frame: bool = setting(True, "w_vel and w_root_vel weigh velocity errors times the frame duration; "
                                       "false: per (rad/s)^2 and (m/s)^2 as the other methods' weights (the "
                                       "former default: w_vel 0.01, w_root_vel 0.3)")
    horizon_s: float = setting(0.5, "length of the planning window", exclusive_minimum=0.0, maximum=5.0, unit="s")
    commit_s: float = setting(0.1, "actions committed per window before it moves on",
                              exclusive_minimum=0.0, maximum=5.0, unit="s")
    iterations: int = setting(6, "iLQR iterations per window at most", minimum=1, maximum=100)
    first_iterations: int = setting(30, "iLQR iterations of the first window at most (it starts cold: the "
                                    "later windows inherit most of their frames from the one before)",
                                    minimum=1, maximum=200)
    first_ramp: bool = setting(False, "the windows at frame 0 grow, commit_s, 2 commit_s, ... below "
                               "horizon_s, each from the last one's plan, and the last commits (continuation: "
                               "a short cold window is well conditioned and each longer one inherits most of "
                               "its frames); the shortest gets first_iterations, the others iterations; "
                               "false: one cold window of horizon_s")
    tolerance: float = setting(0.001, "a window stops when an iteration lowers its loss by less than this "
                               "fraction per unit step size (the gain divided by the step size it was taken at)",
                               minimum=0.0, maximum=1.0)
    min_gain: float = setting(0.0, "a window also stops when an iteration lowers its loss by less than this "
                              "fraction whatever the step size (the next linearisation costs as much as the "
                              "last, for at most that gain); 0: off", minimum=0.0, maximum=1.0)
    min_gain_first_window: bool = setting(True, "min_gain applies to the clip's first window too; false: "
                                          "that window, which starts cold, stops only by tolerance or "
                                          "first_iterations")
    fall_iterations: int = setting(0, "a window whose best rollout the fall rule still flags goes on up to this "
                                   "many iterations (tolerance and min_gain do not stop it; an iteration with "
                                   "no better rollout does); 0: no more than iterations", minimum=0, maximum=200)
    step_sizes: tuple[float, ...] = setting(
        (1.0, 0.5, 0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.0025, 0.001),
        "step sizes of the forward pass, rolled out in one batch (1 to 1e-3, as Tassa's iLQG; the former "
        "default: 1, 0.5, 0.25, 0.1)", exclusive_minimum=0.0, maximum=1.0)
    first_step_sizes: int = setting(0, "the forward pass rolls out the first this many step_sizes and the rest "
                                    "only when none of those improves the window (backtracking in two batches); "
                                    "0: all at once", minimum=0, maximum=100)
    relinearize_tol: float = setting(
        0.0, "a frame's Jacobians are reused until its state (tangent norm, velocities times the frame "
        "duration) or action has moved more than this from where they were taken; 0: every iteration",
        minimum=0.0, maximum=10.0)
    regularization: float = setting(0.01, "initial regularisation of the backward pass (added to Q_uu)",
                                    exclusive_minimum=0.0, maximum=1e6)
    fd_eps: float = setting(1e-6, "finite-difference step of the frame Jacobians", exclusive_minimum=0.0,
                            maximum=1e-2)
    jacobians: str = setting("transition", "how the frame Jacobians are taken: transition (MuJoCo's per-step "
                             "mjd_transitionFD chained over the frame's substeps, 1.5-1.7 times faster) or "
                             "frame (finite differences of whole frames, the former default)",
                             choices=("transition", "frame"))
    transition_stride: int = setting(1, "with jacobians transition: mjd_transitionFD is taken every this many "
                                     "physics steps of a frame and where the contacts change, held for the "
                                     "steps between; 1: every step",
                                     minimum=1, maximum=100)
    jacobian_stride: int = setting(1, "frame Jacobians are taken every this many frames of a window (and at "
                                   "its last) and interpolated between; 1: every frame", minimum=1, maximum=10)
    stride_after_commit: bool = setting(False, "jacobian_stride spares the window's first commit_s: those "
                                        "frames, the ones it commits, get Jacobians of their own, the stride "
                                        "starts after them (later windows plan the rest again); false: the "
                                        "stride runs from the window's first frame")
    smooth_contacts: bool = setting(False, "take the frame Jacobians on a copy of the model whose contacts "
                                    "start soft (solimp[0] = 0, as MuJoCo MPC's planning model); rollouts "
                                    "stay on the exact model")
    w_point_centroid: float = setting(0.0, "weight of the error of the centroid of the body points "
                                      "(body_points: the 15 body geom centres)", minimum=0.0, unit="1/m^2")
    w_point_relative: float = setting(0.0, "weight of each body point's error relative to the centroid",
                                      minimum=0.0, unit="1/m^2")
    w_point_velocity: float = setting(0.0, "weight of each body point's velocity error", minimum=0.0,
                                      unit="s^2/m^2")
    w_clearance: float = setting(100.0, "weight of a watched body's height below the reference's where the "
                                 "reference's is off the floor (clearance: the fall rule's contact criterion "
                                 "as a cost; 0: off)", minimum=0.0, unit="1/m^2")
    clearance_height_m: float = setting(REFERENCE_CONTACT_MARGIN_M, "the clearance cost starts where a watched "
                                        "body is below both the reference's and this height (default: the fall "
                                        "rule's reference margin; 10: below the reference's anywhere)",
                                        exclusive_minimum=0.0, maximum=10.0, unit="m")
    control_limits: bool = setting(True, "the backward pass knows the actuator limits: each frame's step "
                                   "is a box-constrained QP and actions it holds at a limit get no feedback "
                                   "gain; false: unconstrained steps, clipped in the rollout (the former "
                                   "default)")
    carry_regularization: bool = setting(False, "a window starts from the regularisation the previous one "
                                         "ended with (the former default); false: every window starts from "
                                         "regularization (a window is a new problem: after one hard window the "
                                         "carried value, up to 1e6, left the next ones without steps or gains)")
    fall_aware: bool = setting(True, "a window's rollout that the fall rule never flags beats any that it "
                               "flags, whatever their losses (among those that fall, the loss decides); "
                               "false: the loss alone (the former default)")
    init: str | None = setting(None, "method whose actions start the tracker; null: the start below",
                               choices=INIT_METHODS)
    start: str = setting("zero", "actions the tracker starts from when init is null: zero (the first pass is "
                         "the feedback law alone) or inverse_dynamics (the reference's discrete inverse "
                         "dynamics, the former default)", choices=("zero", "inverse_dynamics"))

    def frame_weights(self, frame_dt: float) -> Weights:
        """The objective's weights at a frame duration (s): velocity weights
        times frame_dt^2 (unless velocity_per_frame is off)."""
        if not self.velocity_per_frame:
            return self.weights
        return replace(self.weights, vel=self.w_vel * frame_dt ** 2, root_vel=self.w_root_vel * frame_dt ** 2)

    @property
    def point_weights(self) -> PointWeights:
        return PointWeights(self.w_point_centroid, self.w_point_relative, self.w_point_velocity)

    def __post_init__(self):
        if self.commit_s > self.horizon_s:
            raise ValueError(f"commit_s ({self.commit_s}) must not exceed horizon_s ({self.horizon_s})")



def frames_for(seconds: float, frame_dt: float) -> int:
    """Whole frames in `seconds` (at least 1)."""
    return max(1, int(round(seconds / frame_dt)))


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

    def __init__(self, problem: TrackingProblem, tol: float, eps: float, smooth_contacts: bool = False,
                 stride: int = 1, jacobians: str = "frame", transition_stride: int = 1, exact_frames: int = 0):
        self.p, self.tol, self.eps, self.stride = problem, tol, eps, int(stride)
        self.exact = int(exact_frames)
        self.jacobians = (partial(chained_frame_jacobians, step_stride=int(transition_stride))
                          if jacobians == "transition" else frame_jacobians)
        self.model, self.pool = problem.model, problem.pool
        if smooth_contacts:
            self.model = smooth_contact_model(problem.model)
            self.pool = DataPool(self.model, problem.pool.threads)
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
        if idx.size and self.stride > 1:
            # Every stride-th frame and the last (after the first `exact`
            # frames, which all get their own); the frames between get
            # Jacobians interpolated linearly in time (MuJoCo MPC's
            # derivative skipping).
            exact = min(self.exact, W)
            anchors = np.union1d(np.arange(exact), np.union1d(np.arange(exact, W, self.stride), [W - 1]))
            A, B = self.jacobians(self.model, states[anchors], actions[anchors], self.p.ref.substeps, self.pool,
                                  self.eps)
            self.computed += anchors.size
            pos = np.arange(W)
            hi = np.clip(np.searchsorted(anchors, pos), 1, anchors.size - 1) if anchors.size > 1 else np.zeros(W, int)
            lo = np.maximum(hi - 1, 0)
            span = np.maximum(anchors[hi] - anchors[lo], 1)
            f = np.clip((pos - anchors[lo]) / span, 0.0, 1.0)[:, None, None]
            self.A[sl] = (1 - f) * A[lo] + f * A[hi]
            self.B[sl] = (1 - f) * B[lo] + f * B[hi]
            self.x[sl], self.u[sl] = states, actions
            return self.A[sl], self.B[sl]
        if idx.size:
            A, B = self.jacobians(self.model, states[idx], actions[idx], self.p.ref.substeps, self.pool, self.eps)
            self.A[t0 + idx], self.B[t0 + idx] = A, B
            self.x[t0 + idx], self.u[t0 + idx] = states[idx], actions[idx]
            self.computed += idx.size
        return self.A[sl], self.B[sl]


def _window_residuals(problem, states, actions, t0, w, points=None, clearance=None):
    """Stacked residuals (B, W * 2nv + W * nu [+ W * (3 + 6P)] [+ W * Bc]) of
    rollouts states (B, W+1, nstate) with actions (B, W, nu) starting at
    frame t0; points: the body-point term (_Points) or None; clearance: the
    floor-clearance term (:class:`Clearance`) or None."""
    B, W = actions.shape[:2]
    ref = problem.ref
    _, q, v = split_state(problem.model, states[:, 1:])
    r = tracking_residual(problem.model, q, v, ref.qpos[t0 + 1:t0 + W + 1], ref.qvel[t0 + 1:t0 + W + 1], w)
    parts = [r.reshape(B, -1), np.sqrt(w.effort) * actions.reshape(B, -1)]
    if points is not None:
        pos, vel = point_kinematics(problem.model, q, v)
        rp = point_residual(pos, vel, points.pos[t0 + 1:t0 + W + 1], points.vel[t0 + 1:t0 + W + 1], points.w)
        parts.append(rp.reshape(B, -1))
    if clearance is not None:
        parts.append(clearance.residual(problem.model, q, slice(t0 + 1, t0 + W + 1)).reshape(B, -1))
    return np.concatenate(parts, axis=1)


@dataclass(frozen=True)
class _Points:
    """The body-point term: reference point positions and velocities (N, P, 3) and weights."""
    pos: np.ndarray
    vel: np.ndarray
    w: PointWeights

    @classmethod
    def build(cls, problem: TrackingProblem, w: PointWeights):
        if not w.active:
            return None
        pos, vel = point_kinematics(problem.model, problem.ref.qpos, problem.ref.qvel)
        return cls(pos, vel, w)


def box_qp(H, g, lower, upper, x0=None, iterations=100, armijo=0.1, backtrack=0.6, tol=1e-10):
    """min_x g.x + x.H.x / 2 subject to lower <= x <= upper, by projected
    Newton (Tassa, Mansard and Todorov 2014, "Control-limited differential
    dynamic programming"). H (n, n) positive definite; g, lower, upper,
    x0 (n,). Returns (x (n,), free (n,) bool: the dimensions not held at a
    bound, Cholesky factor of H[free][:, free] (None if none is free)), or
    None when H[free][:, free] is not positive definite. scipy's
    lsq_linear(method="bvls") on H's Cholesky factor finds the same
    minimiser (to 1e-15 on 28 actions) at about 4 times the time per call;
    this one also gives the free set's factor the gains need.
    """
    n = g.shape[0]
    x = np.clip(np.zeros(n) if x0 is None else x0, lower, upper)
    value = g @ x + 0.5 * x @ H @ x
    free, chol = np.ones(n, bool), None
    for _ in range(iterations):
        grad = g + H @ x
        clamped = ((x <= lower) & (grad > 0)) | ((x >= upper) & (grad < 0))
        if clamped.all():
            return x, ~clamped, None
        if chol is None or (~clamped != free).any():
            free = ~clamped
            try:
                chol = np.linalg.cholesky(H[np.ix_(free, free)])
            except np.linalg.LinAlgError:
                return None
        if np.linalg.norm(grad[free]) < tol:
            break
        # Newton step on the free dimensions with the clamped ones held.
        rhs = g[free] + H[np.ix_(free, clamped)] @ x[clamped]
        search = np.zeros(n)
        search[free] = -np.linalg.solve(chol.T, np.linalg.solve(chol, rhs)) - x[free]
        slope = search @ grad
        if slope >= -tol:
            break
        step = 1.0
        while True:
            x_new = np.clip(x + step * search, lower, upper)
            value_new = g @ x_new + 0.5 * x_new @ H @ x_new
            if (value_new - value) / (step * slope) >= armijo or step < 1e-12:
                break
            step *= backtrack
        done = value - value_new < tol * (1.0 + abs(value))
        x, value = x_new, value_new
        if done:
            break
    grad = g + H @ x
    clamped = ((x <= lower) & (grad > 0)) | ((x >= upper) & (grad < 0))
    if (~clamped != free).any():
        free = ~clamped
        if not free.any():
            return x, free, None
        try:
            chol = np.linalg.cholesky(H[np.ix_(free, free)])
        except np.linalg.LinAlgError:
            return None
    return x, free, chol


def backward_pass(A, B, g, H, u, effort, mu, defects=None, limits=False):
    """Riccati recursion of the window's linear-quadratic model.

    A (W, n, n), B (W, n, nu) frame Jacobians; g (W, n), H (W, n, n)
    gradient and Gauss-Newton Hessian of each frame's state cost (frames
    1..W); u (W, nu) nominal actions; defects (W, n): f(x_t, u_t) minus
    x_{t+1} of a nominal that is not a rollout (zero for one that is).
    limits: each frame's step is the box-constrained minimiser that keeps
    u + k in [-1, 1] (:func:`box_qp`), and the actions it holds at a limit
    get no feedback, so the value function knows what the actuators cannot
    do; otherwise the unconstrained step, zeroed only for actions at a
    bound pushed further out. Returns feedforward k (W, nu) and gains K
    (W, nu, n), or None when a regularised Q_uu is not positive definite.
    """
    W, n, nu = B.shape
    Vx, Vxx = g[W - 1].copy(), H[W - 1].copy()
    k, K = np.zeros((W, nu)), np.zeros((W, nu, n))
    eye = np.eye(nu)
    for t in range(W - 1, -1, -1):
        if defects is not None:
            Vx = Vx + Vxx @ defects[t]
        VA, VB = Vxx @ A[t], Vxx @ B[t]
        Qx, Qu = A[t].T @ Vx, B[t].T @ Vx + 2 * effort * u[t]
        Qxx, Qux, Quu = A[t].T @ VA, B[t].T @ VA, B[t].T @ VB + 2 * effort * eye
        if limits:
            sol = box_qp(Quu + mu * eye, Qu, -1.0 - u[t], 1.0 - u[t])
            if sol is None:
                return None
            kt, free, L = sol
            Kt = np.zeros((nu, n))
            if L is not None:
                Kt[free] = -np.linalg.solve(L.T, np.linalg.solve(L, Qux[free]))
        else:
            try:
                L = np.linalg.cholesky(Quu + mu * eye)
            except np.linalg.LinAlgError:
                return None
            kt = -np.linalg.solve(L.T, np.linalg.solve(L, Qu))
            Kt = -np.linalg.solve(L.T, np.linalg.solve(L, Qux))
            pinned = ((u[t] >= 1 - 1e-9) & (kt > 0)) | ((u[t] <= -1 + 1e-9) & (kt < 0))
            kt[pinned], Kt[pinned] = 0.0, 0.0
        k[t], K[t] = kt, Kt
        Vx = Qx + Kt.T @ Quu @ kt + Kt.T @ Qu + Qux.T @ kt
        Vxx = Qxx + Kt.T @ Quu @ Kt + Kt.T @ Qux + Qux.T @ Kt
        Vxx = 0.5 * (Vxx + Vxx.T)
        if t > 0:
            Vx, Vxx = Vx + g[t - 1], Vxx + H[t - 1]
    return k, K


def forward_pass(model, substeps, pool, state0, x_nom, u_nom, k, K, alphas):
    """Closed-loop rollouts u_t = clip(u_nom_t + alpha k_t + K_t (x_t - x_nom_t))
    for every alpha at once. Returns states (S, W+1, nstate), the actions
    applied (S, W, nu) and the diverged frame per rollout (S,), -1 if none."""
    S, (W, nu) = len(alphas), u_nom.shape
    X = np.empty((S, W + 1, x_nom.shape[1]))
    X[:, 0] = state0
    U = np.empty((S, W, nu))
    diverged = np.full(S, -1)
    for t in range(W):
        dx = state_difference(model, X[:, t], np.broadcast_to(x_nom[t], X[:, t].shape))
        U[:, t] = np.clip(u_nom[t] + alphas[:, None] * k[t] + dx @ K[t].T, -1.0, 1.0)
        out = simulate_frames(model, X[:, t], U[:, t:t + 1], substeps, pool)
        X[:, t + 1] = out.states[:, 1]
        diverged[(out.diverged_frame >= 0) & (diverged < 0)] = t + 1
    return X, U, diverged


def _cost_derivatives(problem, x, t0, w, points=None, clearance=None):
    """Gradient (W, n) and Gauss-Newton Hessian (W, n, n) of the tracking
    cost of window states x[1:] (frames t0+1..t0+W)."""
    W = x.shape[0] - 1
    ref = problem.ref
    r, Jr = residual_jacobian(problem.model, x[1:], ref.qpos[t0 + 1:t0 + W + 1], ref.qvel[t0 + 1:t0 + W + 1], w)
    g, H = 2 * np.einsum("tij,ti->tj", Jr, r), 2 * np.einsum("tij,tik->tjk", Jr, Jr)
    if points is not None:
        _, q, v = split_state(problem.model, x[1:])
        pos, vel, J = point_kinematics(problem.model, q, v, jacobians=True)
        rp = point_residual(pos, vel, points.pos[t0 + 1:t0 + W + 1], points.vel[t0 + 1:t0 + W + 1], points.w)
        Jp = point_residual_jacobian(J, points.w)
        g = g + 2 * np.einsum("tij,ti->tj", Jp, rp)
        H = H + 2 * np.einsum("tij,tik->tjk", Jp, Jp)
    if clearance is not None:
        _, q, _ = split_state(problem.model, x[1:])
        rc, Jc = clearance.jacobian(problem.model, q, slice(t0 + 1, t0 + W + 1))
        g = g + 2 * np.einsum("tij,ti->tj", Jc, rc)
        H = H + 2 * np.einsum("tij,tik->tjk", Jc, Jc)
    return g, H


def _window_flags(problem, x, t0, near):
    """(W+1, nstate) states of a window from frame t0 -> (W,) bool: the fall
    rule's verdict on frames t0+1..t0+W (near: :func:`reference_contact_near`)."""
    W = x.shape[0] - 1
    _, q, _ = split_state(problem.model, x[1:])
    rows = slice(t0 + 1, t0 + W + 1)
    return fall_flags(problem.model, q, problem.ref.qpos[rows], near[rows]).any(axis=1)


def _window_falls(problem, X, t0, near):
    """(S, W+1, nstate) window rollouts from frame t0 -> (S,) bool: the fall
    rule flags one of frames t0+1..t0+W; near: :func:`reference_contact_near`
    of the whole reference, or None (then no rollout falls)."""
    if near is None:
        return np.zeros(X.shape[0], bool)
    return np.array([_window_flags(problem, x, t0, near).any() for x in X])


def _line_search(problem, state0, x, u, step, step_sizes, first, target, t0, w, points, clearance, near):
    """Forward passes of the backward pass's step (k, K) at the first
    `first` step sizes, and at the rest only if none of those beats
    `target` (falls, loss); first 0: all at once. Returns the rollouts'
    states (S, W+1, nstate), actions (S, W, nu), losses (S,), falls (S,)
    (diverged rollouts: loss inf, falls 1) and their step sizes (S,)."""
    sizes = np.asarray(step_sizes, dtype=float)
    batches = [sizes[:first], sizes[first:]] if 0 < first < sizes.size else [sizes]
    out = []
    for alphas in batches:
        X, U, diverged = forward_pass(problem.model, problem.ref.substeps, problem.pool, state0, x, u, *step, alphas)
        losses = np.sum(_window_residuals(problem, X, U, t0, w, points, clearance) ** 2, axis=1)
        losses[diverged >= 0] = np.inf
        falls = _window_falls(problem, X, t0, near).astype(int)
        falls[diverged >= 0] = 1
        out.append((X, U, losses, falls, alphas))
        if min(zip(falls, losses)) < target:
            break
    return tuple(np.concatenate(parts) for parts in zip(*out))


def _track_window(problem, cache, x_nom, t0, actions, s: TrackSettings, w: Weights, mu: float, points=None,
                  near=None, iterations=None, clearance=None, min_gain=None):
    """iLQR on one window from x_nom[0]. x_nom (W+1, nstate): the nominal
    states, the previous window's rollout where it reaches and the reference
    beyond (so the first backward pass sees the defects and the first
    forward pass is a feedback law that pulls towards the reference).
    The first step is kept only if it beats the incoming actions played open
    loop from x_nom[0]; otherwise that rollout becomes the nominal.
    Rollouts are ranked by (falls in the window, loss): one that stays up
    (:func:`_window_falls`) beats any that falls; among those that fall,
    the loss decides (near None: the loss alone).
    min_gain: the window's min_gain (None: the settings').
    Returns (actions (W, nu), states (W+1, nstate), loss after the first
    accepted step (the incoming nominal is not a rollout, so it has no loss
    of its own), loss after the last, iterations, regularisation to carry on;
    both losses are inf when every rollout diverged)."""
    x, u = x_nom.copy(), actions.copy()
    ends = problem.rollout(u[:, None, :], x[:-1]).states[:, 1]
    defects = state_difference(problem.model, ends, x[1:])
    # The incoming actions played open loop: the first step must beat them.
    roll_in = problem.rollout(u[None], x_nom[0])
    loss_in = float(np.sum(_window_residuals(problem, roll_in.states, u[None], t0, w, points, clearance) ** 2))
    fallen_in = int(_window_falls(problem, roll_in.states, t0, near)[0])
    if roll_in.diverged_frame[0] >= 0:
        loss_in, fallen_in = np.inf, 1
    loss = loss0 = np.inf
    fallen = 2  # worse than any rollout: nothing accepted yet
    its = 0
    budget = iterations or s.iterations
    for its in range(1, max(budget, s.fall_iterations) + 1):
        A, B = cache.get(t0, x[:-1], u)
        g, H = _cost_derivatives(problem, x, t0, w, points, clearance)
        gain = raw_gain = -1.0
        for _ in range(REGULARIZATION_TRIES):
            step = backward_pass(A, B, g, H, u, w.effort, mu, defects, s.control_limits)
            if step is not None:
                target = (fallen, loss) if np.isfinite(loss) else (fallen_in, loss_in)
                X, U, losses, falls, alphas = _line_search(problem, x_nom[0], x, u, step, s.step_sizes,
                                                           s.first_step_sizes, target, t0, w, points, clearance,
                                                           near)
                best = min(range(len(losses)), key=lambda i: (falls[i], losses[i]))
                if not np.isfinite(loss) and (fallen_in, loss_in) <= (falls[best], losses[best]):
                    x, loss, loss0, defects, fallen = roll_in.states[0], loss_in, loss_in, None, fallen_in
                    gain = raw_gain = 1.0
                    break
                if (falls[best], losses[best]) < (fallen, loss):
                    # Gain per unit step: a small gain at a small step
                    # means the model holds only close by, not that the
                    # window has converged.
                    same = np.isfinite(loss) and falls[best] == fallen
                    raw_gain = (loss - losses[best]) / loss if same else 1.0
                    gain = raw_gain / alphas[best] if same else 1.0
                    if not np.isfinite(loss0):
                        loss0 = float(losses[best])
                    x, u, loss, defects, fallen = X[best], U[best], float(losses[best]), None, int(falls[best])
                    mu = max(mu / REGULARIZATION_FACTOR, MIN_REGULARIZATION)
                    break
            mu = min(mu * REGULARIZATION_FACTOR ** 2, MAX_REGULARIZATION)
        if gain < 0:
            break  # no rollout beat the nominal, even more regularised
        if fallen and its < s.fall_iterations:
            continue
        if its >= budget or gain < s.tolerance or raw_gain < (s.min_gain if min_gain is None else min_gain):
            break
    return u, x, loss0, loss, its, mu


def track(problem: TrackingProblem, s: TrackSettings, init_actions=None) -> MethodResult:
    """Open-loop actions (T, nu) that track the reference (module docstring)."""
    t_start = time.perf_counter()
    model, ref = problem.model, problem.ref
    T = problem.n_actions
    w = s.frame_weights(ref.frame_dt)
    if init_actions is None:
        init = (inverse_dynamics_actions(problem) if s.start == "inverse_dynamics"
                else np.zeros((T, model.nu)))
    else:
        init = np.clip(np.asarray(init_actions, dtype=float), -1.0, 1.0)
        if init.shape != (T, model.nu):
            raise ValueError(f"track: init actions have shape {init.shape}, expected {(T, model.nu)}")
    horizon, commit = frames_for(s.horizon_s, ref.frame_dt), frames_for(s.commit_s, ref.frame_dt)
    commit = min(commit, horizon)
    cache = _JacobianCache(problem, s.relinearize_tol, s.fd_eps, s.smooth_contacts, s.jacobian_stride,
                           s.jacobians, s.transition_stride, commit if s.stride_after_commit else 0)
    points = _Points.build(problem, s.point_weights)
    clearance = Clearance.build(model, ref.qpos, s.w_clearance, s.clearance_height_m)
    near_ref = reference_contact_near(model, ref.qpos)
    near = near_ref if s.fall_aware else None
    actions = init.copy()
    plan = problem.ref_states.copy()  # nominal states: rollouts so far, the reference beyond
    history = []
    t0, mu = 0, s.regularization
    # Horizons of the windows at frame 0 before the last (first_ramp: growing by commit).
    ramp = [h for h in range(commit, horizon, commit) if h < T] if s.first_ramp else []
    while t0 < T:
        W = min(ramp.pop(0) if ramp else horizon, T - t0)
        if not s.carry_regularization:
            mu = s.regularization
        cold = t0 == 0 and (not s.first_ramp or W == min(commit, T))
        u, x, before, after, its, mu = _track_window(problem, cache, plan[t0:t0 + W + 1], t0,
                                                      actions[t0:t0 + W], s, w, mu, points, near,
                                                      s.first_iterations if cold else s.iterations, clearance,
                                                      None if s.min_gain_first_window or not cold else 0.0)
        if not np.isfinite(after):
            # Every closed-loop rollout diverged: keep the incoming actions
            # for this window (their open-loop rollout) and move on.
            log.warning("track: every rollout of the window at frame %d diverged; kept its incoming actions", t0)
            u = actions[t0:t0 + W]
            x = problem.rollout(u[None], plan[t0]).states[0]
        actions[t0:t0 + W] = u
        plan[t0:t0 + W + 1] = x
        # First frame of the window's plan the fall rule flags (-1: none).
        flags = _window_flags(problem, x, t0, near_ref)
        plan_falls = int(t0 + 1 + np.argmax(flags)) if flags.any() else -1
        step = 0 if ramp else commit  # windows shrink at the end of the clip; every frame is planned the same way
        elapsed = time.perf_counter() - t_start
        history.append({"iteration": len(history), "window_start": t0, "window_frames": W,
                        "window_loss_start": before,
                        "loss": after, "window_iterations": its, "window_regularization": mu,
                        "window_plan_fall_frame": plan_falls,
                        "jacobian_frames": cache.computed, "seconds": elapsed})
        done = min(t0 + step, T)
        log.info("track: frames %d/%d, window loss %.4g -> %.4g in %d iterations (regularisation %.3g at the "
                 "end)%s, %.1f s elapsed, about %.0f s left", done, T, before, after, its, mu,
                 f", its plan falls at frame {plan_falls}" if plan_falls >= 0 else "", elapsed,
                 elapsed * (T - done) / max(done, 1))
        t0 += step
    final = _replay(problem, actions, w)
    start = _replay(problem, init, w)
    kept_init = (_up(start, T), -start["loss"]) > (_up(final, T), -final["loss"])
    if kept_init:
        actions, final = init, start
    history.append({"iteration": len(history), "loss": final["loss"], "err_full_rad": final["err_full_rad"],
                    "jacobian_frames": cache.computed, "seconds": time.perf_counter() - t_start})
    info = {"init_loss": start["loss"], "final_loss": final["loss"], "kept_init": bool(kept_init),
            "jacobian_frames": int(cache.computed), "horizon_frames": horizon, "commit_frames": commit}
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
