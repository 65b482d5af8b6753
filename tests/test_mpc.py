"""Sampling MPC: determinism, exact replay of what it planned from, never
worse than its initialisation, known-answer improvement on a trajectory the
simulator made, parameter validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from mocap_refine.generate import generate_trajectory
from mocap_refine.methods import get_method, get_spec, method_settings
from mocap_refine.methods import mpc as mpc_module
from mocap_refine.methods.mpc import (MPCSettings, cem_update, horizon_costs, mpc, mppi_mean, receding_horizon,
                                      smooth_noise)
from mocap_refine.model import load_model
from mocap_refine.objective import Weights, tracking_loss
from mocap_refine.problem import TrackingProblem
from mocap_refine.sim import DataPool, make_state, simulate_frames, split_state
from mocap_refine.verify import verify

# Small, fast settings: a 0.3 s generated clip at 30 fps (9 actions). The
# temperature and weights are the package defaults these tests were written
# with (config/config.yaml's values are the defaults now): Weights().
FAST = {"horizon_frames": 4, "samples": 16, "iterations": 2, "noise_std": 0.05, "seed": 3,
        "update": "cem", "noise_scaling": "uniform",
        "temperature": 0.1, "w_root_pos": 10.0, "w_root_rot": 2.0, "w_vel": 0.01}


@pytest.fixture(scope="module")
def generated():
    gen = generate_trajectory(seconds=0.3, frame_dt=1 / 30, seed=1)
    model = load_model(gen.physics_dt)
    ref = gen.reference()
    return gen, model, ref


def perturbed_actions(gen, std=0.03, seed=0):
    """True actions plus smooth noise (T, nu): a wrong but nearby init."""
    rng = np.random.default_rng(seed)
    noise = gaussian_filter1d(rng.standard_normal(gen.actions.shape), 1.0, axis=0)
    noise *= std / noise.std()
    return np.clip(gen.actions + noise, -1.0, 1.0)


def test_registered():
    assert get_spec("mpc").load() is mpc


def test_bad_params_raise():
    for bad in ({"samples": 0}, {"samples": -3}, {"update": "gradient"}, {"horizon_frames": 0},
                {"iterations": 0}, {"noise_std": -0.1}, {"temperature": 0}, {"samples": 2.5},
                {"noise_scaling": "mass"}, {"horizon": 5}):
        with pytest.raises(ValueError, match="mpc"):
            method_settings("mpc", bad)
    assert method_settings("mpc", {}) == MPCSettings()
    assert method_settings("mpc", {"init": "baseline", "w_root_pos": 5.0}) == \
        MPCSettings(init="baseline", w_root_pos=5.0)
    assert method_settings("mpc", FAST).weights == Weights()


def test_bad_params_raise_from_method(generated):
    _, model, ref = generated
    with pytest.raises(ValueError, match="samples"):
        get_method("mpc")(model, ref, {"samples": 0}, None, 1)
    with pytest.raises(ValueError, match="update"):
        get_method("mpc")(model, ref, {"update": "newton"}, None, 1)
    with pytest.raises(ValueError, match="shape"):
        mpc(TrackingProblem.build(model, ref, 1), MPCSettings(), np.zeros((3, model.nu)))


def test_smooth_noise_unit_std_and_correlated():
    rng = np.random.default_rng(0)
    x = smooth_noise(rng, 400, 20, 6, sigma_frames=3.0)
    assert x.shape == (400, 20, 6)
    assert abs(x.std() - 1.0) < 0.03
    # Neighbouring frames of a Gaussian-smoothed sequence with sigma 3 are
    # correlated by exp(-1 / (4 sigma^2)) ~ 0.97; white noise would give ~0.
    corr = np.mean(x[:, 1:] * x[:, :-1]) / x.var()
    assert abs(corr - np.exp(-1 / 36)) < 0.02


def test_horizon_costs_equal_shared_objective(generated):
    gen, model, ref = generated
    w = Weights()
    rng = np.random.default_rng(0)
    acts = np.clip(gen.actions[None, :4] + 0.05 * rng.standard_normal((3, 4, model.nu)), -1, 1)
    state0 = make_state(model, ref.qpos[0], ref.qvel[0])
    roll = simulate_frames(model, state0, acts, ref.substeps, DataPool(model, 2))
    got = horizon_costs(model, roll.states, roll.diverged_frame, acts, ref.qpos[:5], ref.qvel[:5], w, 0.0)
    _, qpos, qvel = split_state(model, roll.states)
    want = [tracking_loss(model, qpos[b], qvel[b], ref.qpos[:5], ref.qvel[:5], acts[b], w) for b in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # A diverged candidate costs infinity.
    got = horizon_costs(model, roll.states, np.array([-1, 2, -1]), acts, ref.qpos[:5], ref.qvel[:5], w, 0.0)
    assert np.isinf(got[1]) and np.isfinite(got[[0, 2]]).all()


def test_mppi_and_cem_updates_known_answers():
    cand = np.arange(3 * 2 * 1, dtype=float).reshape(3, 2, 1)     # candidates 0, 1, 2
    # Costs 0, 1, 2 with median - min = 1 and temperature 1: weights e^0, e^-1, e^-2.
    w = np.exp(-np.arange(3.0))
    np.testing.assert_allclose(mppi_mean(cand, np.array([5.0, 6.0, 7.0]), 1.0),
                               np.tensordot(w / w.sum(), cand, axes=1), rtol=1e-12)
    # Infinite costs get zero weight; a cold temperature picks the best.
    np.testing.assert_allclose(mppi_mean(cand, np.array([np.inf, 1.0, 2.0]), 1e-3), cand[1])
    mean, std = cem_update(cand, np.array([3.0, 1.0, 2.0]), 2 / 3, 0.1)
    np.testing.assert_allclose(mean, (cand[1] + cand[2]) / 2)
    np.testing.assert_allclose(std, np.maximum(np.abs(cand[1] - cand[2]) / 2, 0.1))


@pytest.mark.parametrize("update", ["cem", "mppi"])
def test_deterministic_for_seed_and_threads(generated, update):
    gen, model, ref = generated
    init = perturbed_actions(gen)
    params = dict(FAST, update=update)
    a = mpc(TrackingProblem.build(model, ref, 2), MPCSettings(**params), init)
    b = mpc(TrackingProblem.build(model, ref, 2), MPCSettings(**params), init)
    assert np.array_equal(a.actions, b.actions)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    c = mpc(TrackingProblem.build(model, ref, 2), MPCSettings(**dict(params, seed=4)), init)
    assert not np.array_equal(a.actions, c.actions)


def test_replay_reproduces_planned_states(generated):
    gen, model, ref = generated
    cfg = MPCSettings(**FAST)
    state0 = make_state(model, ref.qpos[0], ref.qvel[0])
    plan = receding_horizon(model, ref.qpos, ref.qvel, state0, perturbed_actions(gen), ref.substeps,
                            ref.frame_dt, cfg, Weights(), DataPool(model, 2))
    replay = simulate_frames(model, state0, plan.actions, ref.substeps, DataPool(model, 1))
    assert replay.diverged_frame[0] == -1
    # Bit for bit: MPC planned each frame from the state the replay reaches.
    assert np.array_equal(replay.states[0], plan.states)
    # The committed plan never costs more than the unperturbed one.
    assert np.all(plan.horizon_cost <= plan.nominal_cost)


def test_improves_perturbed_true_actions(generated):
    gen, model, ref = generated
    init = perturbed_actions(gen)
    v0 = verify(model, ref.qpos, ref.qvel, init, ref.frame_dt, ref.substeps)
    res = mpc(TrackingProblem.build(model, ref, 2), MPCSettings(**dict(FAST, samples=32, iterations=6)), init)
    v1 = verify(model, ref.qpos, ref.qvel, res.actions, ref.frame_dt, ref.substeps)
    assert res.info["mpc_fallback"] == ""
    assert res.info["mpc_replay_matches"]
    # Measured (armature 0.1): 0.305 rad -> 0.077 rad; a 3x reduction is required.
    assert v1.metrics["err_full_rad"] < v0.metrics["err_full_rad"] / 3
    assert res.info["mpc_loss"] < 0.5 * res.info["mpc_init_loss"]
    assert res.history[-1]["err_full_rad"] == pytest.approx(v1.metrics["err_full_rad"], rel=1e-9)
    assert len(res.history) == ref.n_frames - 1
    assert res.history[-1]["loss"] == pytest.approx(res.info["mpc_loss"], rel=1e-9)


def test_never_worse_than_init(generated, monkeypatch):
    gen, model, ref = generated
    w = Weights()
    state0 = make_state(model, ref.qpos[0], ref.qvel[0])
    init = gen.actions
    init_loss = float(mpc_module.full_loss(model, ref.qpos, ref.qvel, state0, init, ref.substeps, w,
                                           DataPool(model))[0])
    res = mpc(TrackingProblem.build(model, ref, 2), MPCSettings(**FAST), init)
    loss = mpc_module.full_loss(model, ref.qpos, ref.qvel, state0, res.actions, ref.substeps, w, DataPool(model))[0]
    assert loss <= init_loss
    # Force a bad plan (all actions zero: the humanoid collapses) and check
    # that the initialisation comes back, with the reason in info.
    real = mpc_module.receding_horizon

    def zero_plan(*args, **kwargs):
        plan = real(*args, **kwargs)
        return dataclasses.replace(plan, actions=np.zeros_like(plan.actions))

    monkeypatch.setattr(mpc_module, "receding_horizon", zero_plan)
    res = mpc(TrackingProblem.build(model, ref, 1), MPCSettings(**FAST), init)
    assert np.array_equal(res.actions, init)
    assert "initialisation" in res.info["mpc_fallback"]


def test_diverged_init_leaves_no_inf_in_info(generated, monkeypatch):
    """An init whose replay diverges (dance_a's invdyn actions do at 0.81 s)
    has no finite loss: info leaves the loss and error out and says
    mpc_init_diverged, so the actions file can be written (no Inf in it)."""
    gen, model, ref = generated
    real = mpc_module.full_loss
    calls = []

    def first_diverges(*args, **kwargs):
        calls.append(1)
        loss, err, states = real(*args, **kwargs)
        return (np.inf, np.inf, states) if len(calls) == 1 else (loss, err, states)

    monkeypatch.setattr(mpc_module, "full_loss", first_diverges)
    res = mpc(TrackingProblem.build(model, ref, 1), MPCSettings(**FAST), gen.actions)
    assert res.info["mpc_init_diverged"] is True and res.info["mpc_replay_diverged"] is False
    assert "mpc_init_loss" not in res.info and "mpc_init_err_full_rad" not in res.info
    assert np.isfinite(res.info["mpc_loss"]) and res.info["mpc_fallback"] == ""
    assert all(np.isfinite(v) for v in res.info.values() if isinstance(v, float))
