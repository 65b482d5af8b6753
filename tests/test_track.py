"""track: the receding-horizon iLQR tracker."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mocap_refine.methods import get_method, method_settings
from mocap_refine.methods.track import TrackSettings, backward_pass, box_qp, frames_for, inverse_dynamics_actions, track
from mocap_refine.objective import tracking_loss
from mocap_refine.problem import TrackingProblem
from mocap_refine.reference import Reference
from mocap_refine.sim import split_state
from mocap_refine.verify import verify


def _dense_lq_solution(A, B, g, H, u, effort, d):
    """Minimise sum_t [g_t dx_t + dx_t' H_t dx_t / 2] + effort |u + du|^2 over
    du with dx_{t+1} = A_t dx_t + B_t du_t + d_t, dx_0 = 0 (cost on x_1..x_W),
    by stacking: dx = S du + c."""
    W, n, nu = B.shape
    S = np.zeros((W * n, W * nu))
    c = np.zeros(W * n)
    for t in range(W):  # dx_{t+1} block row t
        prev_c = c[(t - 1) * n:t * n] if t else np.zeros(n)
        c[t * n:(t + 1) * n] = (A[t] @ prev_c if t else 0) + d[t]
        for j in range(t + 1):
            S[t * n:(t + 1) * n, j * nu:(j + 1) * nu] = B[t] if j == t else A[t] @ S[(t - 1) * n:t * n, j * nu:(j + 1) * nu]
    Hb = np.zeros((W * n, W * n))
    for t in range(W):
        Hb[t * n:(t + 1) * n, t * n:(t + 1) * n] = H[t]
    gb = g.reshape(-1)
    Q = S.T @ Hb @ S + 2 * effort * np.eye(W * nu)
    q = S.T @ (gb + Hb @ c) + 2 * effort * u.reshape(-1)
    return np.linalg.solve(Q, -q).reshape(W, nu)


def _random_window(rng, W=5, n=4, nu=2):
    """A random linear-quadratic window: A, B (W, n, n|nu), H (W, n, n) positive definite."""
    A = np.eye(n) + 0.1 * rng.standard_normal((W, n, n))
    B = rng.standard_normal((W, n, nu))
    M = rng.standard_normal((W, n, n))
    H = np.einsum("tij,tkj->tik", M, M) + 0.1 * np.eye(n)
    return A, B, H


def test_backward_pass_solves_the_linear_quadratic_window():
    """Known answer: on linear dynamics with defects, rolling the backward
    pass's policy forward gives the optimum of the stacked quadratic."""
    rng = np.random.default_rng(0)
    W, n, nu = 5, 4, 2
    A, B, H = _random_window(rng, W, n, nu)
    g = rng.standard_normal((W, n))
    d = 0.1 * rng.standard_normal((W, n))
    u = 0.1 * rng.standard_normal((W, nu))
    effort = 0.05
    k, K = backward_pass(A, B, g, H, u, effort, 0.0, d)
    dx, du = np.zeros(n), np.zeros((W, nu))
    for t in range(W):
        du[t] = k[t] + K[t] @ dx
        dx = A[t] @ dx + B[t] @ du[t] + d[t]
    assert np.allclose(du, _dense_lq_solution(A, B, g, H, u, effort, d), atol=1e-9)


def test_box_qp_matches_a_bounded_solver():
    """Known answer: projected Newton gives the minimum scipy's bounded
    L-BFGS-B finds, on random 28-action problems with many bounds active,
    and reports as free exactly the dimensions strictly inside them."""
    from scipy.optimize import minimize
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = 28
        M = rng.standard_normal((n, n))
        H = M @ M.T + rng.uniform(0.01, 3.0) * np.eye(n)
        g = rng.standard_normal(n) * rng.uniform(0.1, 30.0)
        u = rng.uniform(-1, 1, n)
        lo, hi = -1 - u, 1 - u
        x, free, _ = box_qp(H, g, lo, hi)
        value = lambda z: g @ z + 0.5 * z @ H @ z  # noqa: E731
        ref = minimize(value, np.zeros(n), jac=lambda z: g + H @ z, bounds=list(zip(lo, hi)), method="L-BFGS-B",
                       options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10000})
        assert value(x) <= ref.fun + 1e-9 * (1 + abs(ref.fun))
        assert np.all((x >= lo) & (x <= hi))
        inside = (x > lo + 1e-9) & (x < hi - 1e-9)
        assert np.array_equal(free, inside)
        assert np.abs((g + H @ x)[free]).max() < 1e-6


def test_backward_pass_with_limits_keeps_actions_inside_and_solves_unbounded_windows():
    """With limits, a window far from the bounds gets the unconstrained
    optimum; one whose optimum lies outside them gets steps that keep u + k
    in [-1, 1] and no feedback on the actions held at a limit."""
    rng = np.random.default_rng(0)
    W, n, nu = 5, 4, 2
    A, B, H = _random_window(rng, W, n, nu)
    g = 0.01 * rng.standard_normal((W, n))
    u = 0.1 * rng.standard_normal((W, nu))
    free_k, free_K = backward_pass(A, B, g, H, u, 0.05, 0.0)
    k, K = backward_pass(A, B, g, H, u, 0.05, 0.0, limits=True)
    assert np.abs(u + free_k).max() < 1
    assert np.allclose(k, free_k, atol=1e-9) and np.allclose(K, free_K, atol=1e-9)
    k, K = backward_pass(A, B, 100 * g, H, u, 0.05, 0.0, limits=True)
    unbounded, _ = backward_pass(A, B, 100 * g, H, u, 0.05, 0.0)
    assert np.abs(u + unbounded).max() > 1
    held = np.isclose(np.abs(u + k), 1.0)
    assert held.any() and np.all(np.abs(u + k) <= 1 + 1e-12)
    assert np.all(K[held] == 0.0)


def test_frames_for_is_in_seconds():
    assert frames_for(0.5, 1 / 60) == 30
    assert frames_for(0.5, 1 / 15) == 8
    assert frames_for(0.01, 1 / 15) == 1


@pytest.fixture(scope="module")
def generated_problem(gen, gen_model):
    ref = Reference(gen.qpos, gen.qvel, gen.frame_dt, gen.physics_dt, gen.substeps)
    return TrackingProblem.build(gen_model, ref, threads=2), ref


def test_window_falls_flags_the_rollouts_the_fall_rule_flags(generated_problem, gen_model):
    """Known answers: the reference's own states never fall; the same
    window with the root 0.3 m low from its 4th frame on falls (height);
    without the reference contacts nothing falls (fall_aware off)."""
    from mocap_refine.methods.track import _window_falls
    from mocap_refine.metrics import reference_contact_near
    problem, ref = generated_problem
    near = reference_contact_near(gen_model, ref.qpos)
    t0, W = 5, 10
    X = np.stack([problem.ref_states[t0:t0 + W + 1]] * 2)
    X[1, 4:, 1 + 2] -= 0.3  # state = (time, qpos, qvel): qpos[2] is the root height
    assert _window_falls(problem, X, t0, near).tolist() == [False, True]
    from mocap_refine.methods.track import _window_flags
    assert _window_flags(problem, X[1], t0, near).tolist() == [False] * 3 + [True] * (W - 3)
    assert _window_falls(problem, X, t0, None).tolist() == [False, False]


def test_tracks_a_trajectory_the_simulator_made(generated_problem, gen, gen_model):
    """Known answer: the generator's own actions reproduce the reference
    (a humanoid falling under random torques, contacts switching inside
    frames). The tracker starts from inverse dynamics, whose open-loop
    replay is far off, and must follow the trajectory closely. It does not
    recover it exactly: where contacts switch inside a frame the frame map is
    only piecewise smooth (docs/methods/track.md)."""
    problem, ref = generated_problem
    s = TrackSettings(horizon_s=0.3, commit_s=0.1)
    out = track(problem, s, None)
    ver = verify(gen_model, ref.qpos, ref.qvel, out.actions, ref.frame_dt, ref.substeps)
    start = verify(gen_model, ref.qpos, ref.qvel, inverse_dynamics_actions(problem), ref.frame_dt, ref.substeps)
    assert ver.metrics["fall_frame"] == -1
    assert ver.metrics["err_full_rad"] < 0.05
    assert ver.metrics["err_full_rad"] < start.metrics["err_full_rad"] / 5
    # What the method reports is what the verifier replays.
    _, q, v = split_state(gen_model, problem.rollout(out.actions).states[0])
    loss = tracking_loss(gen_model, q, v, ref.qpos, ref.qvel, out.actions, s.frame_weights(ref.frame_dt))
    assert out.history[-1]["loss"] == pytest.approx(float(loss), rel=1e-12)
    assert np.all(np.abs(out.actions) <= 1.0)
    # Each window names the first frame its plan falls at, inside it; the
    # last window's plan is the end of this replay, which does not fall.
    H = out.info["horizon_frames"]
    rows = [h for h in out.history if "window_start" in h]
    assert all(h["window_plan_fall_frame"] == -1
               or h["window_start"] < h["window_plan_fall_frame"] <= h["window_start"] + H for h in rows)
    assert rows[-1]["window_plan_fall_frame"] == -1


def test_first_ramp_grows_the_first_window_by_commit_then_recedes(gen, gen_model):
    """Known answers: with first_ramp the windows at frame 0 have commit,
    2 commit, ... frames below the horizon, only the shortest gets
    first_iterations, and the last of them commits: the windows then move
    on by commit with the whole horizon; without it the first window is the
    whole horizon. What is returned still replays as reported."""
    ref = Reference(gen.qpos[:16], gen.qvel[:16], gen.frame_dt, gen.physics_dt, gen.substeps)
    problem = TrackingProblem.build(gen_model, ref)
    s = TrackSettings(horizon_s=4 * ref.frame_dt, commit_s=ref.frame_dt, iterations=1, first_iterations=3,
                      tolerance=0.0, first_ramp=True)
    out = track(problem, s)
    rows = [h for h in out.history if "window_start" in h]
    assert [(h["window_start"], h["window_frames"]) for h in rows[:6]] == [(0, 1), (0, 2), (0, 3), (1, 4), (2, 4),
                                                                            (3, 4)]
    assert rows[0]["window_iterations"] == 3 and {h["window_iterations"] for h in rows[1:]} == {1}
    assert [h["window_start"] for h in rows][-1] == 14 and len(rows) == 3 + 14
    _, q, v = split_state(gen_model, problem.rollout(out.actions).states[0])
    loss = tracking_loss(gen_model, q, v, ref.qpos, ref.qvel, out.actions, s.frame_weights(ref.frame_dt))
    assert out.history[-1]["loss"] == pytest.approx(float(loss), rel=1e-12)
    plain = track(problem, replace(s, first_ramp=False))
    first = next(h for h in plain.history if "window_start" in h)
    assert (first["window_start"], first["window_frames"], first["window_iterations"]) == (0, 4, 3)


def test_deterministic_and_thread_independent(gen, gen_model):
    ref = Reference(gen.qpos[:13], gen.qvel[:13], gen.frame_dt, gen.physics_dt, gen.substeps)
    s = TrackSettings(horizon_s=0.2, commit_s=0.1, iterations=2)
    a1 = track(TrackingProblem.build(gen_model, ref, threads=1), s).actions
    a2 = track(TrackingProblem.build(gen_model, ref, threads=2), s).actions
    a3 = track(TrackingProblem.build(gen_model, ref, threads=2), s).actions
    assert a1.tobytes() == a2.tobytes() == a3.tobytes()


def test_registry_call_takes_the_config_block(gen, gen_model):
    ref = Reference(gen.qpos[:7], gen.qvel[:7], gen.frame_dt, gen.physics_dt, gen.substeps)
    out = get_method("track")(gen_model, ref, {"horizon_s": 0.1, "commit_s": 0.1, "iterations": 1})
    assert out.actions.shape == (6, gen_model.nu)
    assert out.info["horizon_frames"] == 3 and out.info["commit_frames"] == 3
    assert method_settings("track", {}) == TrackSettings()


def test_init_actions_of_the_wrong_shape_are_refused(gen, gen_model):
    ref = Reference(gen.qpos[:7], gen.qvel[:7], gen.frame_dt, gen.physics_dt, gen.substeps)
    with pytest.raises(ValueError, match=r"track: init actions have shape \(3, 28\), expected \(6, 28\)"):
        track(TrackingProblem.build(gen_model, ref), TrackSettings(), np.zeros((3, 28)))


def test_velocity_weights_scale_with_the_frame_duration():
    """A velocity error is weighed as the angle (distance) it turns in one
    frame: the same settings weigh velocities 4 times less at twice the frame rate."""
    s = TrackSettings()
    w30, w60 = s.frame_weights(1 / 30), s.frame_weights(1 / 60)
    assert w30.vel == pytest.approx(s.w_vel / 900) and w30.root_vel == pytest.approx(s.w_root_vel / 900)
    assert w30.vel == pytest.approx(4 * w60.vel) and w30.root_vel == pytest.approx(4 * w60.root_vel)
    assert (w30.joint, w30.root_pos, w30.root_rot, w30.effort) == (s.w_joint, s.w_root_pos, s.w_root_rot, s.w_effort)


def test_jacobian_stride_interpolates_between_the_frames_it_takes(generated_problem):
    """With jacobian_stride 3 a 7-frame window takes Jacobians at frames 0, 3
    and 6 only; frame 1 is 2/3 of frame 0's plus 1/3 of frame 3's."""
    from mocap_refine.derivatives import frame_jacobians
    from mocap_refine.methods.track import _JacobianCache
    problem, ref = generated_problem
    states, actions = problem.ref_states[:7], inverse_dynamics_actions(problem)[:7]
    cache = _JacobianCache(problem, 0.0, 1e-6, stride=3)
    A, B = cache.get(0, states, actions)
    assert cache.computed == 3
    A0, B0 = frame_jacobians(problem.model, states[[0, 3, 6]], actions[[0, 3, 6]], ref.substeps, problem.pool)
    np.testing.assert_allclose(A[[0, 3, 6]], A0, atol=1e-12)
    np.testing.assert_allclose(B[1], 2 / 3 * B0[0] + 1 / 3 * B0[1], atol=1e-12)
    np.testing.assert_allclose(A[5], 1 / 3 * A0[1] + 2 / 3 * A0[2], atol=1e-12)


def test_stride_after_commit_takes_the_committed_frames_exactly(generated_problem):
    """With jacobian_stride 3 and the first 2 frames exact, a 9-frame
    window takes Jacobians at frames 0, 1, 2, 5 and 8; frame 3 is 2/3 of
    frame 2's plus 1/3 of frame 5's."""
    from mocap_refine.derivatives import frame_jacobians
    from mocap_refine.methods.track import _JacobianCache
    problem, ref = generated_problem
    states, actions = problem.ref_states[:9], inverse_dynamics_actions(problem)[:9]
    cache = _JacobianCache(problem, 0.0, 1e-6, stride=3, exact_frames=2)
    A, B = cache.get(0, states, actions)
    assert cache.computed == 5
    taken = [0, 1, 2, 5, 8]
    A0, B0 = frame_jacobians(problem.model, states[taken], actions[taken], ref.substeps, problem.pool)
    np.testing.assert_allclose(A[taken], A0, atol=1e-12)
    np.testing.assert_allclose(B[3], 2 / 3 * B0[2] + 1 / 3 * B0[3], atol=1e-12)
    np.testing.assert_allclose(A[7], 1 / 3 * A0[3] + 2 / 3 * A0[4], atol=1e-12)


def test_body_point_cost_changes_the_plan_and_stays_exact(gen, gen_model):
    """With body-point weights the windows minimise a different loss (other
    actions), and what the method returns still replays as it reports."""
    ref = Reference(gen.qpos[:13], gen.qvel[:13], gen.frame_dt, gen.physics_dt, gen.substeps)
    problem = TrackingProblem.build(gen_model, ref)
    plain = TrackSettings(horizon_s=0.2, commit_s=0.1, iterations=2)
    points = TrackSettings(horizon_s=0.2, commit_s=0.1, iterations=2, w_point_centroid=30.0,
                           w_point_relative=10.0)
    a, b = track(problem, plain), track(problem, points)
    assert not np.array_equal(a.actions, b.actions)
    _, q, v = split_state(gen_model, problem.rollout(b.actions).states[0])
    loss = tracking_loss(gen_model, q, v, ref.qpos, ref.qvel, b.actions, points.frame_weights(ref.frame_dt))
    assert b.history[-1]["loss"] == pytest.approx(float(loss), rel=1e-12)


def test_former_velocity_weights_stay_reachable():
    s = TrackSettings(velocity_per_frame=False, w_vel=0.01, w_root_vel=0.3)
    assert s.frame_weights(1 / 30) == s.frame_weights(1 / 120) == s.weights
    assert (s.weights.vel, s.weights.root_vel) == (0.01, 0.3)


def test_windows_recede_to_the_end_of_the_clip(gen, gen_model):
    """Every window commits commit_s, also where it reaches the clip's end
    (it shrinks there instead of committing the rest at once)."""
    ref = Reference(gen.qpos[:13], gen.qvel[:13], gen.frame_dt, gen.physics_dt, gen.substeps)
    out = track(TrackingProblem.build(gen_model, ref), TrackSettings(horizon_s=0.3, commit_s=0.1, iterations=1))
    starts = [h["window_start"] for h in out.history if "window_start" in h]
    c = out.info["commit_frames"]
    assert starts == list(range(0, 12, c))


def test_start_setting_chooses_the_first_actions(gen, gen_model, monkeypatch):
    """start: zero hands the first window zero actions; inverse_dynamics the
    reference's inverse dynamics (seen by the first window)."""
    import mocap_refine.methods.track as tr
    ref = Reference(gen.qpos[:7], gen.qvel[:7], gen.frame_dt, gen.physics_dt, gen.substeps)
    problem = TrackingProblem.build(gen_model, ref)
    seen = []
    real = tr._track_window

    def spy(problem, cache, x_nom, t0, actions, *args):
        seen.append(actions.copy())
        return real(problem, cache, x_nom, t0, actions, *args)
    monkeypatch.setattr(tr, "_track_window", spy)
    tr.track(problem, TrackSettings(horizon_s=0.2, commit_s=0.1, iterations=1))
    assert not seen[0].any()
    seen.clear()
    tr.track(problem, TrackSettings(horizon_s=0.2, commit_s=0.1, iterations=1, start="inverse_dynamics"))
    np.testing.assert_array_equal(seen[0], inverse_dynamics_actions(problem)[:seen[0].shape[0]])


def test_first_step_never_worse_than_the_incoming_actions_open_loop(generated_problem, gen):
    """Known answer: handed the generator's own actions, which replay the
    reference exactly (window loss = effort term only), a window whose
    nominal beyond the start is wrong (the reference 3 frames ahead, so the
    feedback law pulls towards the wrong states) must not accept that law's
    step; the window's losses are at most the open-loop loss."""
    from mocap_refine.methods.track import _JacobianCache, _track_window, _window_residuals
    problem, ref = generated_problem
    s = TrackSettings(horizon_s=0.2, commit_s=0.1, iterations=2)
    w = s.frame_weights(ref.frame_dt)
    W = frames_for(s.horizon_s, ref.frame_dt)
    true = np.asarray(gen.actions[:W], dtype=float)
    roll = problem.rollout(true[None])
    loss_true = float(np.sum(_window_residuals(problem, roll.states, true[None], 0, w) ** 2))
    cache = _JacobianCache(problem, 0.0, s.fd_eps)
    nominal = np.concatenate([problem.ref_states[:1], problem.ref_states[4:W + 4]])
    u, x, before, after, its, mu = _track_window(problem, cache, nominal, 0, true, s, w, s.regularization)
    assert before <= loss_true * (1 + 1e-12) and after <= before
    roll_u = problem.rollout(u[None])
    assert float(np.sum(_window_residuals(problem, roll_u.states, u[None], 0, w) ** 2)) == pytest.approx(after,
                                                                                                         rel=1e-9)


def test_every_window_starts_from_the_configured_regularization(gen, gen_model, monkeypatch):
    """A window is a new problem: it starts from `regularization`, not from
    what the last window escalated to (on walk that reached 1e6 and left the
    next windows without steps or gains: it fell at frame 26). With
    carry_regularization (the former default) each window gets the last
    one's value."""
    import mocap_refine.methods.track as tr
    ref = Reference(gen.qpos[:13], gen.qvel[:13], gen.frame_dt, gen.physics_dt, gen.substeps)
    problem = TrackingProblem.build(gen_model, ref)
    given, returned = [], []
    real = tr._track_window

    def spy(problem, cache, x_nom, t0, actions, s, w, mu, *args):
        given.append(mu)
        out = real(problem, cache, x_nom, t0, actions, s, w, mu, *args)
        # As if the window had escalated: the next one must not inherit it.
        returned.append(out[-1] * 1e3)
        return out[:-1] + (returned[-1],)
    monkeypatch.setattr(tr, "_track_window", spy)
    s = TrackSettings(horizon_s=0.2, commit_s=0.1, iterations=2, regularization=0.05)
    tr.track(problem, s)
    assert len(given) > 2 and given == [0.05] * len(given)
    given.clear(), returned.clear()
    tr.track(problem, replace(s, carry_regularization=True))
    assert given[0] == 0.05 and given[1:] == returned[:-1]


def test_clearance_term_enters_the_window_loss_and_its_derivatives(generated_problem, gen_model):
    """The window loss ranking the rollouts and the backward pass's cost
    derivatives both carry the floor-clearance residual: on states 4 cm
    below the reference, the loss grows by exactly its squares and the
    gradient by 2 J^T r."""
    from mocap_refine.clearance import Clearance
    from mocap_refine.methods.track import _cost_derivatives, _window_residuals
    problem, ref = generated_problem
    w = TrackSettings().frame_weights(ref.frame_dt)
    c = Clearance.build(gen_model, ref.qpos, 40.0)
    t0, W = 6, 8
    X = problem.ref_states[t0:t0 + W + 1].copy()
    X[1:, 1 + 2] -= 0.04  # state = (time, qpos, qvel): qpos[2] is the root height
    U = np.zeros((1, W, gen_model.nu))
    plain = np.sum(_window_residuals(problem, X[None], U, t0, w) ** 2)
    rc, Jc = c.jacobian(gen_model, X[1:, 1:1 + gen_model.nq], slice(t0 + 1, t0 + W + 1))
    assert (rc < 0).any()
    with_c = np.sum(_window_residuals(problem, X[None], U, t0, w, clearance=c) ** 2)
    assert with_c == pytest.approx(plain + np.sum(rc ** 2), rel=1e-12)
    g0, H0 = _cost_derivatives(problem, X, t0, w)
    g1, H1 = _cost_derivatives(problem, X, t0, w, clearance=c)
    np.testing.assert_allclose(g1 - g0, 2 * np.einsum("tij,ti->tj", Jc, rc), atol=1e-12)
    np.testing.assert_allclose(H1 - H0, 2 * np.einsum("tij,tik->tjk", Jc, Jc), atol=1e-9)


def test_forward_pass_rolls_out_the_configured_step_sizes(gen, gen_model, monkeypatch):
    """With first_step_sizes 0 every forward pass tries exactly `step_sizes`; the former four stay
    reachable by config."""
    import mocap_refine.methods.track as tr
    ref = Reference(gen.qpos[:7], gen.qvel[:7], gen.frame_dt, gen.physics_dt, gen.substeps)
    problem = TrackingProblem.build(gen_model, ref)
    seen = []
    real = tr.forward_pass

    def spy(*args):
        seen.append(tuple(args[-1]))
        return real(*args)
    monkeypatch.setattr(tr, "forward_pass", spy)
    for sizes in (TrackSettings().step_sizes, (1.0, 0.5, 0.25, 0.1)):
        seen.clear()
        tr.track(problem, TrackSettings(horizon_s=0.2, commit_s=0.1, iterations=2, step_sizes=sizes,
                                        first_step_sizes=0))
        assert seen and set(seen) == {sizes}


def test_convergence_is_measured_per_unit_step(generated_problem):
    """Known answer: with only tiny steps (1e-3) every iteration lowers a
    cold window's loss by a tiny fraction, yet the model is far from
    converged. The tolerance is on the gain per unit step, so the window
    uses all its iterations although their total gain is below the
    tolerance (a rule on the raw gain would stop after the second)."""
    from mocap_refine.methods.track import _JacobianCache, _track_window
    problem, ref = generated_problem
    s = TrackSettings(horizon_s=0.2, commit_s=0.1, iterations=4, step_sizes=(1e-3,), tolerance=0.01)
    w = s.frame_weights(ref.frame_dt)
    W = frames_for(s.horizon_s, ref.frame_dt)
    cache = _JacobianCache(problem, 0.0, s.fd_eps)
    u, x, first, last, its, mu = _track_window(problem, cache, problem.ref_states[:W + 1], 0,
                                               np.zeros((W, problem.model.nu)), s, w, s.regularization)
    assert its == s.iterations
    assert 0 < (first - last) / first < s.tolerance


def test_min_gain_stops_a_window_whose_iterations_gain_little_whatever_the_step(generated_problem):
    """Known answer: the window of the test above, with min_gain at that
    tolerance, stops after its second iteration (the first accepted step
    has no loss to compare with), with the second iteration's gain below
    min_gain; min_gain 0 runs all four."""
    from mocap_refine.methods.track import _JacobianCache, _track_window
    problem, ref = generated_problem
    s = TrackSettings(horizon_s=0.2, commit_s=0.1, iterations=4, step_sizes=(1e-3,), tolerance=0.01,
                      min_gain=0.01)
    w = s.frame_weights(ref.frame_dt)
    W = frames_for(s.horizon_s, ref.frame_dt)
    runs = {}
    for min_gain in (0.01, 0.0):
        cache = _JacobianCache(problem, 0.0, s.fd_eps)
        runs[min_gain] = _track_window(problem, cache, problem.ref_states[:W + 1], 0,
                                       np.zeros((W, problem.model.nu)), replace(s, min_gain=min_gain), w,
                                       s.regularization)
    _, _, first, last, its, _ = runs[0.01]
    assert its == 2
    assert 0 < (first - last) / first < 0.01
    assert runs[0.0][4] == 4


def test_min_gain_can_spare_the_cold_first_window(gen, gen_model):
    """Known answers: with tiny steps every iteration gains less than
    min_gain, so each window stops after two iterations; with
    min_gain_first_window false the clip's first window runs its whole
    first_iterations budget and the later ones still stop after two."""
    ref = Reference(gen.qpos[:13], gen.qvel[:13], gen.frame_dt, gen.physics_dt, gen.substeps)
    problem = TrackingProblem.build(gen_model, ref)
    s = TrackSettings(horizon_s=0.2, commit_s=0.1, iterations=4, first_iterations=5, step_sizes=(1e-3,),
                      tolerance=0.0, min_gain=0.01)
    its = {}
    for first in (True, False):
        rows = [h for h in track(problem, replace(s, min_gain_first_window=first)).history if "window_start" in h]
        its[first] = [h["window_iterations"] for h in rows]
    assert its[True][0] == 2 and its[False][0] == 5
    assert set(its[True][1:]) == set(its[False][1:]) == {2}


def test_fall_iterations_go_on_while_the_window_falls(generated_problem, monkeypatch):
    """Known answers: with a fall rule that flags every rollout, a window
    that tolerance 1 stops after its second iteration goes on to
    fall_iterations (5); with a rule that flags none it stops after two
    whatever fall_iterations says."""
    from mocap_refine.methods import track as tr
    problem, ref = generated_problem
    s = TrackSettings(horizon_s=0.2, commit_s=0.1, iterations=2, tolerance=1.0, fall_iterations=5)
    w = s.frame_weights(ref.frame_dt)
    W = frames_for(s.horizon_s, ref.frame_dt)
    its = {}
    for flagged in (True, False):
        monkeypatch.setattr(tr, "_window_falls", lambda problem, X, t0, near, f=flagged: np.full(X.shape[0], f))
        cache = tr._JacobianCache(problem, 0.0, s.fd_eps)
        its[flagged] = tr._track_window(problem, cache, problem.ref_states[:W + 1], 0,
                                        np.zeros((W, problem.model.nu)), s, w, s.regularization)[4]
    assert its == {True: 5, False: 2}


def test_line_search_rolls_out_the_small_steps_only_when_the_first_ones_do_not_improve(generated_problem):
    """Known answers: with first_step_sizes 4 a target every rollout beats
    gets exactly the first four rollouts, and a target none beats gets all
    of them, identical to rolling out every step size at once."""
    from mocap_refine.methods.track import _line_search
    problem, ref = generated_problem
    s = TrackSettings()
    w = s.frame_weights(ref.frame_dt)
    W = 6
    rng = np.random.default_rng(0)
    nu, n = problem.model.nu, 2 * problem.model.nv
    step = (0.3 * rng.standard_normal((W, nu)), np.zeros((W, nu, n)))
    x, u = problem.ref_states[:W + 1], np.zeros((W, nu))

    def search(first, target):
        return _line_search(problem, x[0], x, u, step, s.step_sizes, first, target, 0, w, None, None, None)
    every = search(0, (2, np.inf))
    assert every[0].shape[0] == len(s.step_sizes)
    easy, hard = search(4, (2, np.inf)), search(4, (-1, 0.0))
    np.testing.assert_array_equal(easy[4], s.step_sizes[:4])
    for a, b, c in zip(easy, hard, every):
        np.testing.assert_array_equal(a, c[:4])
        np.testing.assert_array_equal(b, c)
