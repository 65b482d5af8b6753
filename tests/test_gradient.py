"""The gradient method: derivatives that match finite differences, and an
optimiser that improves on its initialisation."""

import numpy as np
import pytest

from mocap_refine.derivatives import frame_jacobians, loss_and_gradient, state_difference
from mocap_refine.generate import generate_trajectory
from mocap_refine.methods import method_settings
from mocap_refine.methods.gradient import (_stays_up_longer_or_lower_loss, gradient, recovery_weights,
                                          window_residual)
from mocap_refine.metrics import fall_frame
from mocap_refine.model import load_model
from mocap_refine.objective import Weights, tracking_loss
from mocap_refine.problem import TrackingProblem
from mocap_refine.sim import DataPool, make_state, simulate_frames, split_state


@pytest.fixture(scope="module")
def short():
    """Six frames (1/30 s, 20 substeps each) the simulator produced from
    standing, with ground contact; perturbed actions so the loss is not 0."""
    gen = generate_trajectory(seconds=0.2, frame_dt=1 / 30, seed=3)
    model = load_model(gen.physics_dt)
    rng = np.random.default_rng(0)
    actions = np.clip(gen.actions + 0.05 * rng.standard_normal(gen.actions.shape), -0.95, 0.95)
    return gen, model, actions


def _run(model, ref, params, init, threads=1):
    """gradient on `ref` with the settings of config block `params`."""
    return gradient(TrackingProblem.build(model, ref, threads), method_settings("gradient", params), init)


def _loss(model, gen, actions, w, pool):
    s0 = make_state(model, gen.qpos[0], gen.qvel[0])
    states = simulate_frames(model, s0, actions, gen.substeps, pool).states[0]
    _, q, v = split_state(model, states)
    return float(tracking_loss(model, q, v, gen.qpos, gen.qvel, actions, w))


def test_gradient_matches_central_differences(short):
    """The adjoint gradient of the full replay loss equals central finite
    differences of that loss to 1e-3 relative, entry by entry and along a
    random direction."""
    gen, model, actions = short
    pool = DataPool(model, 2)
    w = Weights()
    s0 = make_state(model, gen.qpos[0], gen.qvel[0])
    loss, grad, _ = loss_and_gradient(model, s0, actions, gen.qpos, gen.qvel, gen.substeps, w, pool)
    assert loss == pytest.approx(_loss(model, gen, actions, w, pool), rel=1e-12)
    h = 1e-6
    T, nu = actions.shape
    entries = [(0, 0), (0, 9), (1, 27), (2, 5), (3, 16), (T - 1, 3), (T - 1, 20)]
    for t, i in entries:
        ap, am = actions.copy(), actions.copy()
        ap[t, i] += h
        am[t, i] -= h
        fd = (_loss(model, gen, ap, w, pool) - _loss(model, gen, am, w, pool)) / (2 * h)
        assert grad[t, i] == pytest.approx(fd, rel=1e-3, abs=1e-3 * np.abs(grad).max()), (t, i)
    d = np.random.default_rng(1).standard_normal(actions.shape)
    d /= np.linalg.norm(d)
    fd = (_loss(model, gen, actions + h * d, w, pool) - _loss(model, gen, actions - h * d, w, pool)) / (2 * h)
    assert np.sum(grad * d) == pytest.approx(fd, rel=1e-3)


def test_frame_jacobian_predicts_small_perturbations(short):
    """A_t dx + B_t du predicts the next frame's deviation for tiny dx, du."""
    gen, model, actions = short
    pool = DataPool(model, 2)
    s0 = make_state(model, gen.qpos[0], gen.qvel[0])
    states = simulate_frames(model, s0, actions, gen.substeps, pool).states[0]
    A, B = frame_jacobians(model, states[:-1], actions, gen.substeps, pool, centered=True)
    rng = np.random.default_rng(2)
    from mocap_refine.derivatives import perturb_states
    t = 2
    dx = 1e-6 * rng.standard_normal(2 * model.nv)
    du = 1e-6 * rng.standard_normal(model.nu)
    out = simulate_frames(model, perturb_states(model, states[t], dx), (actions[t] + du)[None],
                          gen.substeps, pool).states[0, 1]
    actual = state_difference(model, out, states[t + 1])
    predicted = A[t] @ dx + B[t] @ du
    assert np.linalg.norm(actual - predicted) < 1e-2 * np.linalg.norm(actual)


def test_chained_jacobians_match_whole_frame_differences(short):
    """mjd_transitionFD chained over the substeps gives the frame Jacobians
    that finite differences of whole frames give (ground contact, one action
    at each limit: MuJoCo perturbs those inward as frame_jacobians does),
    with any number of threads, and predicts a perturbed frame as well.
    Frame 0 is left out: the generated body settles onto the floor there,
    the frame map is not smooth, and no finite difference predicts it
    (whole-frame centred, forward and chained all miss by more than 50x)."""
    from mocap_refine.derivatives import chained_frame_jacobians, perturb_states
    gen, model, actions = short
    actions = actions.copy()
    actions[1, 0], actions[2, 5] = 1.0, -1.0
    pool = DataPool(model, 2)
    s0 = make_state(model, gen.qpos[0], gen.qvel[0])
    states = simulate_frames(model, s0, actions, gen.substeps, pool).states[0]
    A, B = frame_jacobians(model, states[:-1], actions, gen.substeps, pool, centered=True)
    A1, B1 = chained_frame_jacobians(model, states[:-1], actions, gen.substeps, DataPool(model, 1))
    A2, B2 = chained_frame_jacobians(model, states[:-1], actions, gen.substeps, pool)
    np.testing.assert_array_equal(A1, A2)
    np.testing.assert_array_equal(B1, B2)
    for t in range(1, len(actions)):
        assert np.linalg.norm(A1[t] - A[t]) < 3e-3 * np.linalg.norm(A[t]), t
        assert np.linalg.norm(B1[t] - B[t]) < 1e-4 * np.linalg.norm(B[t]), t
    rng = np.random.default_rng(2)
    t = 2
    dx, du = 1e-6 * rng.standard_normal(2 * model.nv), 1e-6 * rng.standard_normal(model.nu)
    du[5] = abs(du[5])  # action 5 of frame 2 sits at its lower limit
    out = simulate_frames(model, perturb_states(model, states[t], dx), (actions[t] + du)[None],
                          gen.substeps, pool).states[0, 1]
    actual = state_difference(model, out, states[t + 1])
    assert np.linalg.norm(actual - (A1[t] @ dx + B1[t] @ du)) < 1e-2 * np.linalg.norm(actual)


def test_chained_jacobians_with_a_step_stride_stay_close_through_contact_changes(short):
    """step_stride k takes mjd_transitionFD every k-th physics step and where
    the contact set changes: on frames that settle onto the floor the
    Jacobians stay close to the every-step ones (holding a step's Jacobian
    across a contact change instead: B off by 5x at stride 2 and 1e6 at
    stride 4 on frame 0), identically with any number of threads."""
    from mocap_refine.derivatives import chained_frame_jacobians
    gen, model, actions = short
    pool = DataPool(model, 1)
    states = simulate_frames(model, make_state(model, gen.qpos[0], gen.qvel[0]), actions, gen.substeps,
                             pool).states[0]

    def rel(X, X0):
        return np.linalg.norm(X - X0, axis=(1, 2)) / np.linalg.norm(X0, axis=(1, 2))

    A0, B0 = chained_frame_jacobians(model, states[:-1], actions, gen.substeps, pool)
    A2, B2 = chained_frame_jacobians(model, states[:-1], actions, gen.substeps, pool, step_stride=2)
    A4, B4 = chained_frame_jacobians(model, states[:-1], actions, gen.substeps, pool, step_stride=4)
    assert rel(A2, A0).max() < 0.15 and rel(B2, B0).max() < 0.02
    assert rel(A4, A0).max() < 1.0 and rel(B4, B0).max() < 0.05
    assert not np.array_equal(B4, B0)  # the stride takes fewer steps' Jacobians
    A4t, B4t = chained_frame_jacobians(model, states[:-1], actions, gen.substeps, DataPool(model, 2), step_stride=4)
    np.testing.assert_array_equal(A4t, A4)
    np.testing.assert_array_equal(B4t, B4)


def test_window_residual_is_the_loss(short):
    gen, model, actions = short
    pool = DataPool(model, 1)
    w = Weights()
    s0 = make_state(model, gen.qpos[0], gen.qvel[0])
    r = window_residual(model, s0, actions[None], gen.qpos, gen.qvel, gen.substeps, w, pool)
    assert np.sum(r ** 2) == pytest.approx(_loss(model, gen, actions, w, pool), rel=1e-12)


@pytest.fixture(scope="module")
def tracking_case():
    gen = generate_trajectory(seconds=0.4, frame_dt=1 / 30, seed=5)
    model = load_model(gen.physics_dt)
    rng = np.random.default_rng(4)
    init = np.clip(gen.actions + 0.15 * rng.standard_normal(gen.actions.shape), -1, 1)
    return gen, model, init


@pytest.mark.parametrize("optimizer", ["gauss_newton", "ilqr", "adam"])
def test_optimiser_improves_on_perturbed_truth(tracking_case, optimizer):
    """Init = the generator's true actions plus noise. Gauss-Newton must bring
    the tracking loss far down (the truth reaches ~0), iLQR at least halve
    it; Adam with the design document's settings must not be worse than its
    init. History ends with
    the loss reached."""
    gen, model, init = tracking_case
    ref = gen.reference()
    w = Weights()
    pool = DataPool(model, 2)
    params = {"optimizer": optimizer, "iterations": 4 if optimizer == "gauss_newton" else 3}
    if optimizer == "ilqr":
        params.update(window_frames=4, commit_frames=2)
    res = _run(model, ref, params, init, threads=2)
    init_loss = _loss(model, gen, init, w, pool)
    final_loss = _loss(model, gen, res.actions, w, pool)
    assert final_loss <= init_loss
    assert res.history[-1]["loss"] == pytest.approx(final_loss, rel=1e-9)
    if optimizer == "gauss_newton":
        assert final_loss < 0.05 * init_loss
    if optimizer == "ilqr":
        assert final_loss < 0.5 * init_loss
    assert np.all(np.abs(res.actions) <= 1)


def test_gradient_is_deterministic(tracking_case):
    gen, model, init = tracking_case
    ref = gen.reference()
    params = {"iterations": 2, "window_frames": 4, "commit_frames": 2}
    a = _run(model, ref, params, init, threads=2).actions
    b = _run(model, ref, params, init, threads=2).actions
    assert np.array_equal(a, b)


def test_never_worse_than_init(tracking_case):
    """Started from the exact actions, nothing can improve the tracking: the
    method returns actions at least as good as the truth."""
    gen, model, _ = tracking_case
    ref = gen.reference()
    w = Weights(effort=0.0)
    res = _run(model, ref, {"iterations": 1, "w_effort": 0.0}, gen.actions, threads=1)
    pool = DataPool(model, 1)
    assert _loss(model, gen, res.actions, w, pool) <= _loss(model, gen, gen.actions, w, pool) + 1e-12


def test_recovery_weights_replace_and_escalate():
    w = Weights(root_pos=7.0, root_rot=2.0)
    one = recovery_weights(w, {"root_height": 100.0, "root_rot": 10.0}, 1)
    three = recovery_weights(w, {"root_height": 100.0, "root_rot": 10.0}, 3)
    assert (one.root_height, one.root_rot, one.root_pos, one.joint) == (100.0, 10.0, 7.0, w.joint)
    assert (three.root_height, three.root_rot, three.root_pos) == (900.0, 90.0, 7.0)


def test_recovery_goes_back_once_and_switches_weights(tracking_case):
    """A height tolerance nothing can meet sends the first committed window
    back to frame 0; every later window uses the recovery weights, and there
    is no second rollback. A tolerance nothing exceeds changes nothing."""
    gen, model, init = tracking_case
    ref = gen.reference()
    base = {"iterations": 1, "window_frames": 4, "commit_frames": 2, "long_window_frames": 0}
    recover = {"recover_height_m": 1e-12, "recover_frames": 50, "recover_window_frames": 5,
               "recover_commit_frames": 2, "recover_levels": 1}
    res = _run(model, ref, {**base, **recover}, init, threads=2)
    assert res.info["recovery_from_frame"] == 0
    rows = [r for r in res.history if "window_start" in r]
    assert [r["recovery"] for r in rows] == [0] + [1] * (len(rows) - 1)
    assert rows[0]["window_start"] == 0 and rows[1]["window_start"] == 0
    # After the rollback: recovery windows of 5 frames, 2 committed each.
    T = ref.n_frames - 1
    expected, t = [], 0
    while t < T:
        expected.append(t)
        t += T - t if t + 5 >= T else 2
    assert [r["window_start"] for r in rows[1:]] == expected
    # Two levels: the first recovery window sinks too (nothing meets the
    # tolerance), so level 2 starts from frame 0 again and stays.
    two = _run(model, ref, {**base, **recover, "recover_levels": 2}, init, threads=2)
    rows = [r for r in two.history if "window_start" in r]
    assert [r["recovery"] for r in rows] == [0, 1] + [2] * (len(rows) - 2)
    assert [r["window_start"] for r in rows[:3]] == [0, 0, 0]
    assert two.info["recovery_levels_used"] == 2 and two.info["recovery_from_frame"] == 0
    off = _run(model, ref, {**base, "recover_height_m": 0.0}, init, threads=2)
    loose = _run(model, ref, {**base, "recover_height_m": 10.0}, init, threads=2)
    assert off.info["recovery_from_frame"] == loose.info["recovery_from_frame"] == -1
    assert np.array_equal(off.actions, loose.actions)


def test_long_pass_keeps_the_pass_with_the_lower_loss(tracking_case):
    """The second pass (long window) leaves the first pass untouched, runs
    its own receding windows with its own weights from long_start, and the
    result is exactly the pass that stays up longer, then the one with the
    lower full replay loss: from the noisy init one 8-frame iteration is
    worse than the first pass (and falls earlier) and is dropped; from the
    first pass's actions it improves and is kept. (The generated clip sinks
    to the floor at its end; the first pass rests a thigh 2 cm above the
    floor where the reference's is 4 cm, within the reference's contact
    margin: no fall. The improved second pass stays up as long, so the loss
    decides.) A fall frame of -1 (never) counts as staying up longest."""
    gen, model, init = tracking_case
    ref = gen.reference()
    pool = DataPool(model, 1)
    w = Weights()
    base = {"iterations": 1, "window_frames": 4, "commit_frames": 2, "recover_height_m": 0.0,
            "long_window_frames": 8, "long_commit_frames": 3, "long_weights": {}}
    first = _run(model, ref, {**base, "long_window_frames": 0}, init, threads=2)
    assert all(r.get("pass") in (1, None) for r in first.history) and "long_pass_kept" not in first.info
    first_loss = _loss(model, gen, first.actions, w, pool)

    dropped = _run(model, ref, base, init, threads=2)
    rows1 = [r for r in dropped.history if r.get("pass") == 1]
    rows2 = [r for r in dropped.history if r.get("pass") == 2]
    assert [r["window_start"] for r in rows1] == [r["window_start"] for r in first.history if "window_start" in r]
    T = ref.n_frames - 1
    expected, t = [], 0
    while t < T:
        expected.append(t)
        t += T - t if t + 8 >= T else 3
    assert [r["window_start"] for r in rows2] == expected
    info = dropped.info
    assert info["first_pass_loss"] == pytest.approx(first_loss, rel=1e-9)
    first_q = split_state(model, simulate_frames(model, make_state(model, gen.qpos[0], gen.qvel[0]),
                                                 first.actions, gen.substeps, pool).states[0])[1]
    assert info["first_pass_fall_frame"] == fall_frame(model, first_q, gen.qpos) == -1
    up = lambda f: T + 1 if f < 0 else f  # noqa: E731 (frames up; never falling: T + 1)
    assert up(info["long_pass_fall_frame"]) <= up(info["first_pass_fall_frame"])
    assert info["long_pass_loss"] > info["first_pass_loss"] and info["long_pass_kept"] is False
    assert np.array_equal(dropped.actions, first.actions)

    kept = _run(model, ref, {**base, "long_start": "first_pass"}, init, threads=2)
    assert kept.info["long_pass_fall_frame"] == kept.info["first_pass_fall_frame"]
    assert kept.info["long_pass_kept"] is True and kept.info["long_pass_loss"] < first_loss
    assert _loss(model, gen, kept.actions, w, pool) == pytest.approx(kept.info["long_pass_loss"], rel=1e-9)
    # long_weights reach the second pass: without joint and root terms it
    # ends elsewhere (still scored with the method's own weights).
    blind = _run(model, ref, {**base, "long_start": "first_pass",
                                  "long_weights": {"root_pos": 0.0, "root_rot": 0.0, "joint": 0.0}},
                     init, threads=2)
    assert blind.info["long_pass_loss"] > 1.2 * kept.info["long_pass_loss"]


def test_the_pass_that_stays_up_longer_wins_before_the_lower_loss():
    up, down_late, down_early = ({"fall_frame": -1, "loss": 50.0}, {"fall_frame": 89, "loss": 20.0},
                                 {"fall_frame": 30, "loss": 10.0})
    assert _stays_up_longer_or_lower_loss(up, down_late, 106)
    assert not _stays_up_longer_or_lower_loss(down_late, up, 106)
    assert _stays_up_longer_or_lower_loss(down_late, down_early, 106)
    assert _stays_up_longer_or_lower_loss({"fall_frame": -1, "loss": 1.0}, up, 106)
    assert not _stays_up_longer_or_lower_loss(up, up, 106)


@pytest.mark.parametrize("params, message", [
    ({"long_window_frames": -1}, "long_window_frames"),
    ({"long_window_frames": 4, "long_commit_frames": 5}, "long_commit_frames"),
    ({"long_jacobian": "magic"}, "long_jacobian"),
    ({"long_weights": {"rootpos": 1.0}}, "long_weights"),
    ({"long_start": "middle"}, "long_start"),
    ({"recover_height_m": -0.1}, "recover_height_m"),
    ({"recover_frames": -1}, "recover_frames"),
    ({"recover_levels": -1}, "recover_levels"),
    ({"recover_weights": {"root_hieght": 1.0}}, "recover_weights"),
    ({"optimizer": "sgd"}, "optimizer"),
    ({"window_frames": 0}, "window_frames"),
    ({"commit_frames": 5, "window_frames": 3}, "commit_frames"),
    ({"learning_rate": -1}, "learning_rate"),
    ({"jacobian": "magic"}, "jacobian"),
    ({"alpha": 0.5}, "gradient.alpha: unknown setting"),
    ({"iterations": 0}, "gradient.iterations: 0 is below the minimum 1"),
])
def test_bad_params(tracking_case, params, message):
    gen, model, init = tracking_case
    with pytest.raises(ValueError, match=message):
        _run(model, gen.reference(), params, init)
