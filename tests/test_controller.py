"""controller: time-varying LQR gains around a replay, applied in the simulator."""

from __future__ import annotations

import numpy as np
import pytest

from mocap_refine.controller import closed_loop, feedback_gains
from mocap_refine.generate import generate_trajectory
from mocap_refine.metrics import joint_errors
from mocap_refine.model import load_model
from mocap_refine.problem import TrackingProblem
from mocap_refine.reference import Reference
from mocap_refine.sim import split_state


@pytest.fixture(scope="module")
def setup():
    # Seed 1: the regularisation was chosen on seed 0.
    g = generate_trajectory(seconds=1.0, frame_dt=1 / 30, seed=1)
    model = load_model(g.physics_dt)
    ref = Reference(g.qpos, g.qvel, g.frame_dt, g.physics_dt, g.substeps)
    problem = TrackingProblem.build(model, ref, threads=2)
    states, gains = feedback_gains(problem, g.actions)
    return g, model, problem, states, gains


def test_gains_have_the_documented_shape_and_are_finite(setup):
    g, model, _, states, gains = setup
    assert gains.shape == (g.actions.shape[0], model.nu, 2 * model.nv)
    assert states.shape[0] == g.actions.shape[0] + 1
    assert np.isfinite(gains).all()


def test_without_noise_the_controller_replays_the_open_loop_actions_exactly(setup):
    g, _, problem, states, gains = setup
    visited, executed, clean = closed_loop(problem, g.actions, states, gains)
    assert np.array_equal(visited, states)
    assert np.array_equal(executed, np.clip(g.actions, -1, 1)) and np.array_equal(clean, executed)


def test_gains_hold_the_trajectory_under_action_noise(setup):
    """Known answer: the generator's actions replay the reference exactly; with
    action noise (std 0.05, 5 seeds) open loop drifts off, the controller
    stays at most half as far (zero gains would equal open loop)."""
    g, model, problem, states, gains = setup
    ref = problem.ref
    open_err, closed_err = [], []
    for seed in range(5):
        noise = 0.05 * np.random.default_rng(seed).standard_normal(g.actions.shape)
        _, q_open, _ = split_state(model, problem.rollout(np.clip(g.actions + noise, -1, 1)).states[0])
        visited, executed, clean = closed_loop(problem, g.actions, states, gains, noise)
        _, q_closed, _ = split_state(model, visited)
        open_err.append(joint_errors(model, q_open, ref.qpos).mean())
        closed_err.append(joint_errors(model, q_closed, ref.qpos).mean())
        assert np.array_equal(executed, np.clip(clean + noise, -1, 1))
    assert np.mean(closed_err) < np.mean(open_err) / 2


def test_starts_anywhere(setup):
    g, _, problem, states, gains = setup
    visited, executed, _ = closed_loop(problem, g.actions, states, gains, start_frame=10)
    assert visited.shape[0] == g.actions.shape[0] - 10 + 1 and executed.shape[0] == g.actions.shape[0] - 10
    assert np.array_equal(visited, states[10:])


def test_gains_file_from_the_cli_drives_the_controller(tmp_path):
    """The stage users run (`mocap-refine gains`, rule gains): the stored
    gains and nominal states are the controller's, and with no noise the
    controller replays the stored states bit for bit."""
    from mocap_refine import pipeline
    from mocap_refine.cli import main
    from mocap_refine.generate import write_generated_clip
    import h5py

    clip = tmp_path / "gen.txt"
    write_generated_clip(clip, seconds=0.3, seed=2)
    ref_h5 = tmp_path / "reference.h5"
    assert main(["prepare", str(clip), str(ref_h5), str(tmp_path / "diag.csv")]) == 0
    acts = tmp_path / "actions" / "baseline.h5"
    assert main(["actions", str(ref_h5), "baseline", str(acts)]) == 0
    out = tmp_path / "gains" / "baseline.h5"
    assert main(["gains", str(ref_h5), str(acts), str(out)]) == 0
    ref, _ = pipeline.load_reference(ref_h5)
    model = load_model(ref.physics_dt)
    problem = TrackingProblem.build(model, ref)
    with h5py.File(out) as f:
        gains, states, actions = f["gains"][()], f["states"][()], f["actions"][()]
        assert f.attrs["method"] == "baseline" and "tangent" in f["gains"].attrs["description"]
    want_states, want_gains = feedback_gains(problem, actions)
    assert np.array_equal(states, want_states) and np.array_equal(gains, want_gains)
    visited, _, _ = closed_loop(problem, actions, states, gains)
    assert np.array_equal(visited, states)
