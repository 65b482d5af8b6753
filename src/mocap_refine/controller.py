"""A time-varying linear feedback controller around a replayed trajectory.

For open-loop actions a_t (any method's), the replay gives nominal states
x_t; a time-varying LQR on the linearised frame map (finite-difference frame
Jacobians along the replay, the tracking objective's Gauss-Newton Hessian as
state cost) gives gains K_t (nu x 2nv, in MuJoCo's tangent space of the
state), and the controller applies

    u_t = clip(a_t + K_t (x_t - x_nom_t), -1, 1)

inside the one simulator (``sim.simulate_frames``), one frame at a time.
Open-loop actions cannot label a state off the nominal path; this controller
can (the clean label of a noisy rollout is ``u_t`` before the noise).
"""

from __future__ import annotations

import numpy as np

from .derivatives import frame_jacobians, residual_jacobian, state_difference
from .objective import Weights
from .problem import TrackingProblem
from .model import smooth_contact_model
from .sim import DataPool, simulate_frames

# Added to Q_uu in the Riccati pass; chosen on generate_trajectory(seed=0)
# among 0.01, 1, 10, 100 by
#   python benchmarks/controller_noise.py --generated 0 --regularization 0.01 1 10 100
# (the tests check seed 1).
REGULARIZATION = 1.0


def feedback_gains(problem: TrackingProblem, actions: np.ndarray, weights: Weights | None = None,
                   regularization: float = REGULARIZATION, smooth_contacts: bool = True,
                   eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """TVLQR gains around the open-loop replay of `actions` (T, nu).
    Returns the replayed states (T+1, nstate) and gains K (T, nu, 2nv).
    smooth_contacts: frame Jacobians on model.smooth_contact_model (a
    contact event inside a frame otherwise gives one frame a gain hundreds
    of times the others')."""
    from .methods.track import backward_pass
    w = weights or Weights()
    model, ref = problem.model, problem.ref
    x = problem.rollout(actions).states[0]
    lin, pool = model, problem.pool
    if smooth_contacts:
        lin = smooth_contact_model(model)
        pool = DataPool(lin, pool.threads)
    A, B = frame_jacobians(lin, x[:-1], actions, ref.substeps, pool, eps)
    _, Jr = residual_jacobian(model, x[1:], ref.qpos[1:], ref.qvel[1:], w)
    H = 2 * np.einsum("tij,tik->tjk", Jr, Jr)
    # A regulator around the replay: no linear cost term, no pull on the actions themselves.
    _, K = backward_pass(A, B, np.zeros(H.shape[:2]), H, np.zeros_like(actions), w.effort, regularization)
    return x, K


def feedback_action(model, state: np.ndarray, nominal_state: np.ndarray, action: np.ndarray,
                    gain: np.ndarray) -> np.ndarray:
    """The control law at one frame: clip(action + gain (state - nominal), -1, 1),
    the difference in the tangent space (nstate,) x 2 -> (nu,)."""
    return np.clip(action + gain @ state_difference(model, state, nominal_state), -1.0, 1.0)


def closed_loop(problem: TrackingProblem, actions: np.ndarray, states: np.ndarray, gains: np.ndarray,
                noise: np.ndarray | None = None, start_frame: int = 0,
                start_state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the controller from `start_frame` to the end of the clip.

    actions (T, nu), states (T+1, nstate), gains (T, nu, 2nv): the nominal
    and its gains; noise (T - start_frame, nu) added to the executed action
    (None: none); start_state: default the nominal state of start_frame.
    Returns visited states (T - start_frame + 1, nstate), executed actions and
    clean actions (T - start_frame, nu) (clean = before the noise).
    """
    model, substeps, pool = problem.model, problem.ref.substeps, problem.pool
    T = actions.shape[0]
    n = T - start_frame
    x = np.empty((n + 1, states.shape[1]))
    x[0] = states[start_frame] if start_state is None else start_state
    executed = np.empty((n, actions.shape[1]))
    clean = np.empty_like(executed)
    for i, t in enumerate(range(start_frame, T)):
        clean[i] = feedback_action(model, x[i], states[t], actions[t], gains[t])
        executed[i] = clean[i] if noise is None else np.clip(clean[i] + noise[i], -1.0, 1.0)
        x[i + 1] = simulate_frames(model, x[i], executed[i][None], substeps, pool).states[0, 1]
    return x, executed, clean
