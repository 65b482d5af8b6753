"""Iterative error feedback: never worse than its start, improves a
perturbed known answer, deterministic, monotone best-so-far history."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mocap_refine.generate import generate_trajectory, write_generated_clip
from mocap_refine.methods.baseline import pd_actions
from mocap_refine.methods import method_settings
from mocap_refine.methods.feedback import FeedbackSettings, correction, feedback
from mocap_refine.metrics import joint_errors
from mocap_refine.model import layout, load_model
from mocap_refine.objective import Weights, tracking_loss
from mocap_refine.pipeline import compute_actions, prepare
from mocap_refine.problem import TrackingProblem
from mocap_refine.sim import make_state, simulate_frames, split_state

FORMS = ({"windowed": False, "iterations": 4}, {"windowed": True, "iterations": 4, "window_frames": 5})


@pytest.fixture(scope="module")
def clip():
    gen = generate_trajectory(seconds=0.5, frame_dt=1 / 30, seed=2)
    model = load_model(gen.physics_dt)
    ref = gen.reference()
    return gen, model, ref


def _replay(model, ref, actions):
    out = simulate_frames(model, make_state(model, ref.qpos[0], ref.qvel[0]), actions, ref.substeps)
    _, qpos, qvel = split_state(model, out.states[0])
    loss = float(tracking_loss(model, qpos, qvel, ref.qpos, ref.qvel, actions, Weights()))
    err_full = float(joint_errors(model, qpos[1:], ref.qpos[1:]).mean())
    return loss, err_full


def test_correction_maps_angle_error_through_the_pd_gains():
    model = load_model(1 / 600)
    lay = layout(model)
    q = model.qpos0.copy()
    q_ref = q.copy()
    j = model.jnt_qposadr[model.joint("right_knee").id]
    q_ref[j] = -0.1                               # reference knee 0.1 rad further bent
    v = np.zeros(model.nv)
    v_ref = v.copy()
    v_ref[model.jnt_dofadr[model.joint("right_knee").id]] = -0.5
    a = correction(model, q[None], v[None], q_ref[None], v_ref[None])[0]
    k = lay.actuator_names.index("right_knee")
    # kp 500 N m/rad * -0.1 rad + kd 50 N m s/rad * -0.5 rad/s = -75 N m; limit 150 N m.
    assert a[k] == pytest.approx(-0.5)
    assert np.count_nonzero(a) == 1


@pytest.mark.parametrize("form", FORMS, ids=("full", "windowed"))
def test_never_worse_than_init_and_history_is_monotone(clip, form):
    gen, model, ref = clip
    init = pd_actions(model, ref.qpos, ref.qvel)
    res = feedback(TrackingProblem.build(model, ref, 2), FeedbackSettings(**form, alpha=0.5), init)
    init_loss, init_err = _replay(model, ref, init)
    loss, err = _replay(model, ref, res.actions)
    assert loss <= init_loss and err <= init_err
    h = res.history
    assert h[0]["iteration"] == 0 and h[0]["loss"] == pytest.approx(init_loss, rel=1e-12)
    best = [r["best_loss"] for r in h]
    assert all(b1 <= b0 for b0, b1 in zip(best, best[1:]))
    assert best[-1] == pytest.approx(loss, rel=1e-12)
    assert all(set(r) >= {"iteration", "loss", "err_full_rad", "err50_rad", "fall_frame", "seconds"} for r in h)
    assert all(s1 >= s0 for s0, s1 in zip([r["seconds"] for r in h], [r["seconds"] for r in h[1:]]))


def test_improves_a_perturbed_known_answer(clip):
    # The generator's own actions reproduce the trajectory exactly; feedback
    # (default form: windowed) started from a perturbed copy must bring the
    # replay back toward it. Measured: loss 217 -> 2.8, err_full 0.44 -> 0.026 rad.
    gen, model, ref = clip
    rng = np.random.default_rng(0)
    init = np.clip(gen.actions + 0.05 * rng.standard_normal(gen.actions.shape), -1, 1)
    res = feedback(TrackingProblem.build(model, ref, 2), FeedbackSettings(), init)
    init_loss, init_err = _replay(model, ref, init)
    loss, err = _replay(model, ref, res.actions)
    assert loss < 0.05 * init_loss
    assert err < 0.1 * init_err


def test_step_search_keeps_the_best_of_its_candidates(clip):
    # One window over the whole clip, one correction: the result is the best
    # of the start and the candidates, so a candidate set that contains the
    # single step alpha can only do as well or better than alpha alone, and
    # exactly as well as the best single step of the set.
    gen, model, ref = clip
    T = ref.n_frames - 1
    init = np.clip(gen.actions + 0.05 * np.random.default_rng(1).standard_normal(gen.actions.shape), -1, 1)
    base = {"window_frames": T, "iterations": 1, "window_tol_rad": 0.0, "alpha": 0.01}
    losses = {}
    for scales in ([0.5], [1.0], [2.0], [4.0], [0.5, 1.0, 2.0, 4.0]):
        settings = method_settings("feedback", {**base, "alpha_scales": scales})
        res = feedback(TrackingProblem.build(model, ref, 2), settings, init)
        losses[tuple(scales)] = _replay(model, ref, res.actions)[0]
    singles = [losses[(s,)] for s in (0.5, 1.0, 2.0, 4.0)]
    assert losses[(0.5, 1.0, 2.0, 4.0)] == pytest.approx(min(singles), rel=1e-12)
    assert losses[(0.5, 1.0, 2.0, 4.0)] < _replay(model, ref, init)[0]


def test_deterministic(clip):
    gen, model, ref = clip
    a = feedback(TrackingProblem.build(model, ref, 2), FeedbackSettings(iterations=3), None)
    b = feedback(TrackingProblem.build(model, ref, 2), FeedbackSettings(iterations=3), None)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]


def test_bad_parameters_are_rejected(clip):
    gen, model, ref = clip
    with pytest.raises(ValueError, match="feedback.alpah: unknown setting"):
        method_settings("feedback", {"alpah": 0.5})
    with pytest.raises(ValueError, match="alpha"):
        method_settings("feedback", {"alpha": 0})
    with pytest.raises(ValueError, match="init"):
        method_settings("feedback", {"init": "mpc"})
    for bad in ([], [0.0], [1.0, float("nan")], "fast"):
        with pytest.raises(ValueError, match="alpha_scales"):
            method_settings("feedback", {"alpha_scales": bad})
    with pytest.raises(ValueError, match="shape"):
        feedback(TrackingProblem.build(model, ref), FeedbackSettings(), np.zeros((3, model.nu)))


def test_pipeline_runs_feedback_from_baseline(tmp_path):
    clip = tmp_path / "gen.txt"
    write_generated_clip(clip, seconds=0.3, frame_dt=1 / 30, seed=0)
    prepare(clip, tmp_path / "reference.h5", tmp_path / "diagnostics.csv")
    compute_actions(tmp_path / "reference.h5", "baseline", {}, tmp_path / "baseline.h5")
    out = tmp_path / "feedback.h5"
    compute_actions(tmp_path / "reference.h5", "feedback", {"init": "baseline", "iterations": 2}, out,
                    init_h5=tmp_path / "baseline.h5", threads=2)
    with h5py.File(out, "r") as f:
        assert f["actions"].shape == (9, 28)
        for k in ("iteration", "loss", "best_loss", "err_full_rad", "err50_rad", "fall_frame", "seconds"):
            assert f[f"history/{k}"].shape[0] >= 2
        assert f.attrs["form"] == "windowed"
