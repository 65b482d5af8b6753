"""Derivatives of the frame map and of the tracking loss.

The frame map x_{t+1} = f(x_t, u_t) takes the physics state at frame t and
the action held over the frame's substeps to the state at frame t+1. States
are perturbed and compared in MuJoCo's tangent space, dx = (dq, dv) with
dq = qpos' (-) qpos (mj_differentiatePos semantics) and dv = qvel' - qvel, so
dx has 2 nv entries.

Jacobians A_t = df/dx (2nv x 2nv) and B_t = df/du (2nv x nu) come two ways:
:func:`frame_jacobians`, finite differences of whole frames for all frames at
once in one batched, threaded ``simulate_frames`` call; and
:func:`chained_frame_jacobians`, MuJoCo's per-step ``mjd_transitionFD``
chained over a frame's substeps along its nominal, on a thread pool. Both
evaluate 2nv + nu + 1 perturbed steps per physics step, but
``mjd_transitionFD`` skips the position stage for velocity and control
perturbations and the velocity stage for control ones, so the chained ones
are 1.5 to 1.7 times faster (``benchmarks/jacobian_cost.py``). The loss gradient is then
chained backward (adjoint), so one gradient costs O(T) frame-map evaluations,
not O(T^2) rollouts.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import mujoco
import numpy as np

from .objective import Weights, dof_weights, qpos_difference, tracking_loss
from .sim import STATE_SPEC, DataPool, simulate_frames, split_state


def perturb_states(model: mujoco.MjModel, states: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """states (..., nstate) "plus" tangent perturbations dx (..., 2nv)."""
    out = np.array(states, dtype=float, copy=True)
    flat = out.reshape(-1, out.shape[-1])
    dxf = np.broadcast_to(dx, out.shape[:-1] + (dx.shape[-1],)).reshape(-1, dx.shape[-1])
    nq, nv = model.nq, model.nv
    for i in range(flat.shape[0]):
        qpos = flat[i, 1:1 + nq].copy()
        mujoco.mj_integratePos(model, qpos, dxf[i, :nv], 1.0)
        flat[i, 1:1 + nq] = qpos
        flat[i, 1 + nq:1 + nq + nv] += dxf[i, nv:]
    return out


def state_difference(model: mujoco.MjModel, states: np.ndarray, states_ref: np.ndarray) -> np.ndarray:
    """(..., nstate) "minus" (..., nstate) -> (..., 2nv) tangent difference."""
    _, q, v = split_state(model, states)
    _, q0, v0 = split_state(model, states_ref)
    return np.concatenate([qpos_difference(model, q, q0), v - v0], axis=-1)


def frame_jacobians(model: mujoco.MjModel, states: np.ndarray, actions: np.ndarray, substeps: int,
                    pool: DataPool | None = None, eps: float = 1e-6,
                    centered: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Finite-difference Jacobians of the frame map at each (state, action).

    states: (T, nstate) frame-start states; actions: (T, nu).
    Returns A (T, 2nv, 2nv) and B (T, 2nv, nu). Actions are perturbed
    inward at the [-1, 1] bounds (MuJoCo clamps ctrl), so B stays the
    derivative of the interior side.
    """
    T, nu, n = actions.shape[0], model.nu, 2 * model.nv
    signs = (1.0, -1.0) if centered else (1.0,)
    x_starts, u_all = [], []
    eye_x = np.eye(n) * eps
    for sgn in signs:
        x_starts.append(perturb_states(model, np.repeat(states[:, None, :], n, axis=1), sgn * eye_x[None]))
        du = np.repeat(actions[:, None, :], nu, axis=1).copy()
        step = sgn * eps * np.ones(nu)
        # Stay inside the control box so the perturbation is not clamped away.
        at_hi = actions + step > 1.0
        at_lo = actions + step < -1.0
        st = np.where(at_hi | at_lo, -step, step)
        du[:, np.arange(nu), np.arange(nu)] += st
        x_starts.append(np.repeat(states[:, None, :], nu, axis=1))
        u_all.append((np.repeat(actions[:, None, :], n, axis=1), du, st))
    batch_states = [states]
    batch_actions = [actions]
    for k, sgn in enumerate(signs):
        batch_states += [x_starts[2 * k].reshape(-1, states.shape[1]), x_starts[2 * k + 1].reshape(-1, states.shape[1])]
        batch_actions += [u_all[k][0].reshape(-1, nu), u_all[k][1].reshape(-1, nu)]
    S = np.concatenate(batch_states)
    U = np.concatenate(batch_actions)[:, None, :]
    out = simulate_frames(model, S, U, substeps, pool).states[:, 1]
    nominal = out[:T]
    pos = T
    results = []
    for k, sgn in enumerate(signs):
        xs = out[pos:pos + T * n].reshape(T, n, -1)
        pos += T * n
        us = out[pos:pos + T * nu].reshape(T, nu, -1)
        pos += T * nu
        dA = state_difference(model, xs, np.repeat(nominal[:, None], n, axis=1))  # (T, n, n): [t, pert, out]
        dB = state_difference(model, us, np.repeat(nominal[:, None], nu, axis=1))  # (T, nu, n)
        results.append((dA, dB, u_all[k][2]))
    if centered:
        (dAp, dBp, stp), (dAm, dBm, stm) = results
        A = (dAp - dAm) / (2 * eps)
        # Where a bound flipped the step, both sides went the same way: fall
        # back to the one-sided quotient of the + side.
        same = np.sign(stp) == np.sign(stm)
        with np.errstate(divide="ignore", invalid="ignore"):  # the branch np.where drops divides by zero
            B = np.where(same[:, :, None], dBp / stp[:, :, None], (dBp - dBm) / (stp - stm)[:, :, None])
    else:
        dA, dB, st = results[0]
        A = dA / eps
        B = dB / st[:, :, None]
    return np.swapaxes(A, 1, 2), np.swapaxes(B, 1, 2)


def chained_frame_jacobians(model: mujoco.MjModel, states: np.ndarray, actions: np.ndarray, substeps: int,
                            pool: DataPool | None = None, eps: float = 1e-6,
                            step_stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Frame Jacobians as products of per-step ones (``mjd_transitionFD``).

    states (T, nstate) frame-start states, actions (T, nu) -> A (T, 2nv,
    2nv), B (T, 2nv, nu): along each frame's nominal substeps k = 1..S,
    A = A_S ... A_1 and B = sum_k A_S ... A_{k+1} B_k (the action is held
    over the frame). step_stride > 1: the per-step Jacobians are taken at
    steps 1, 1 + stride, ... and wherever the active contacts or their
    constraint states change, and held for the steps between. Frames are
    shared out over the pool's MjData, one thread each (MuJoCo releases the GIL). Each frame starts from reset data
    (zero warm start), so the result does not depend on the thread or on
    what ran before; MuJoCo perturbs a control at its limit inward.
    """
    T, nu, n = actions.shape[0], model.nu, 2 * model.nv
    A, B = np.empty((T, n, n)), np.empty((T, n, nu))
    pool = pool or DataPool(model, 1)

    def frames(worker: int) -> None:
        data = pool.datas[worker]
        As, Bs = np.empty((n, n)), np.empty((n, nu))
        for t in range(worker, T, len(pool.datas)):
            mujoco.mj_resetData(model, data)
            mujoco.mj_setState(model, data, states[t], STATE_SPEC)
            data.ctrl[:] = actions[t]
            Af, Bf = np.eye(n), np.zeros((n, nu))
            taken_at = None
            for k in range(substeps):
                contacts = _contact_signature(model, data) if step_stride > 1 else None
                if k % step_stride == 0 or contacts != taken_at:
                    mujoco.mjd_transitionFD(model, data, eps, False, As, Bs, None, None)
                    taken_at = contacts
                Af, Bf = As @ Af, As @ Bf + Bs
                mujoco.mj_step(model, data)
            A[t], B[t] = Af, Bf

    workers = min(len(pool.datas), max(T, 1))
    if workers == 1:
        frames(0)
    else:
        list(_thread_pool(workers).map(frames, range(workers)))
    return A, B


def _contact_signature(model: mujoco.MjModel, data: mujoco.MjData) -> bytes:
    """The geom pairs in contact and the constraint states at the current
    state (after mj_step, data.contact is of the state before the step, so
    run the forward dynamics again; mj_step recomputes it anyway)."""
    mujoco.mj_forward(model, data)
    return data.contact.geom[:data.ncon].tobytes() + data.efc_state.tobytes()


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """One persistent pool per size (creating threads per call costs more
    than a short window's Jacobians)."""
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="jacobians")
    return _POOLS[workers]


def residual_jacobian(model: mujoco.MjModel, states: np.ndarray, qpos_ref: np.ndarray,
                      qvel_ref: np.ndarray, w: Weights, eps: float = 1e-6):
    """Per-frame tracking residual r(x) and its Jacobian w.r.t. tangent
    perturbations of the state.

    states: (T, nstate); qpos_ref (T, nq), qvel_ref (T, nv) the matching
    reference frames. Returns r (T, 2nv) and J (T, 2nv, 2nv).
    The position residual's Jacobian (the inverse right Jacobian of SO(3)
    for ball joints, not the identity away from the reference) is taken by
    central differences of ``qpos_difference``; the velocity part is linear.
    """
    nv = model.nv
    T = states.shape[0]
    wp, wv = dof_weights(model, w)
    _, q, v = split_state(model, states)
    dq = qpos_difference(model, q, qpos_ref)
    r = np.concatenate([np.sqrt(wp) * dq, np.sqrt(wv) * (v - qvel_ref)], axis=-1)
    Jq = np.empty((T, nv, nv))
    qp = np.repeat(q[:, None, :], nv, axis=1).copy()
    qm = qp.copy()
    for t in range(T):
        for i in range(nv):
            e = np.zeros(nv)
            e[i] = eps
            mujoco.mj_integratePos(model, qp[t, i], e, 1.0)
            mujoco.mj_integratePos(model, qm[t, i], -e, 1.0)
    refs = np.repeat(qpos_ref[:, None, :], nv, axis=1)
    Jq = (qpos_difference(model, qp, refs) - qpos_difference(model, qm, refs)) / (2 * eps)  # (T, i, out)
    J = np.zeros((T, 2 * nv, 2 * nv))
    J[:, :nv, :nv] = np.sqrt(wp)[None, :, None] * np.swapaxes(Jq, 1, 2)
    J[:, nv:, nv:] = np.diag(np.sqrt(wv))[None]
    return r, J


def state_cost_derivatives(model: mujoco.MjModel, states: np.ndarray, qpos_ref: np.ndarray,
                           qvel_ref: np.ndarray, w: Weights, eps: float = 1e-6):
    """Gauss-Newton derivatives of the per-frame tracking cost |r(x)|^2:
    cost (T,), gradient g (T, 2nv), Hessian 2 J^T J (T, 2nv, 2nv)."""
    r, J = residual_jacobian(model, states, qpos_ref, qvel_ref, w, eps)
    g = 2 * np.einsum("tij,ti->tj", J, r)
    H = 2 * np.einsum("tij,tik->tjk", J, J)
    return np.sum(r ** 2, axis=1), g, H


def loss_and_gradient(model: mujoco.MjModel, state0: np.ndarray, actions: np.ndarray,
                      qpos_ref: np.ndarray, qvel_ref: np.ndarray, substeps: int, w: Weights,
                      pool: DataPool | None = None, eps: float = 1e-6,
                      centered: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Full-replay tracking loss and its gradient w.r.t. all actions.

    state0: (nstate,) start state (frame 0); actions (T, nu);
    qpos_ref (T+1, nq), qvel_ref (T+1, nv). The loss is exactly
    ``objective.tracking_loss`` of ``simulate_frames(state0, actions)``.
    Returns (loss, grad (T, nu), states (T+1, nstate)).
    """
    roll = simulate_frames(model, state0, actions, substeps, pool)
    states = roll.states[0]
    _, q, v = split_state(model, states)
    loss = float(tracking_loss(model, q, v, qpos_ref, qvel_ref, actions, w))
    A, B = frame_jacobians(model, states[:-1], actions, substeps, pool, eps, centered)
    _, g, _ = state_cost_derivatives(model, states[1:], qpos_ref[1:], qvel_ref[1:], w)
    T = actions.shape[0]
    grad = np.empty_like(actions)
    lam = g[T - 1]
    for t in range(T - 1, -1, -1):
        grad[t] = B[t].T @ lam + 2 * w.effort * actions[t]
        if t > 0:
            lam = g[t - 1] + A[t].T @ lam
    return loss, grad, states
