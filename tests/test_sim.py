"""simulate_frames, the one simulation function: determinism, exact replay
of the generator, restart from the middle, batches, divergence."""

from __future__ import annotations

import numpy as np

from mocap_refine.generate import standing_qpos
from mocap_refine.model import load_model
from mocap_refine.sim import DataPool, make_state, simulate_frames, split_state, state_size


def _start(model, gen):
    return make_state(model, gen.qpos[0], gen.qvel[0])


def test_state_layout(gen_model, gen):
    s = make_state(gen_model, gen.qpos[3], gen.qvel[3], time=0.25)
    assert s.shape == (state_size(gen_model),)
    t, q, v = split_state(gen_model, np.stack([s, s]))
    assert t.shape == (2,) and q.shape == (2, 43) and v.shape == (2, 34)
    assert t[0] == 0.25
    np.testing.assert_array_equal(q[1], gen.qpos[3])
    np.testing.assert_array_equal(v[1], gen.qvel[3])


def test_deterministic(gen_model, gen):
    a = simulate_frames(gen_model, _start(gen_model, gen), gen.actions, gen.substeps)
    b = simulate_frames(gen_model, _start(gen_model, gen), gen.actions, gen.substeps, DataPool(gen_model, 2))
    np.testing.assert_array_equal(a.states, b.states)
    assert a.states.shape == (1, gen.actions.shape[0] + 1, state_size(gen_model))
    assert a.diverged_frame.tolist() == [-1]


def test_replay_reproduces_generator(gen_model, gen):
    """The generator's frames are simulator states, so replaying its actions
    from its frame 0 must give them back (to rounding)."""
    out = simulate_frames(gen_model, _start(gen_model, gen), gen.actions, gen.substeps)
    t, qpos, qvel = split_state(gen_model, out.states[0])
    np.testing.assert_allclose(qpos, gen.qpos, rtol=0, atol=1e-9)
    np.testing.assert_allclose(qvel, gen.qvel, rtol=0, atol=1e-9)
    np.testing.assert_allclose(t, np.arange(len(t)) * gen.frame_dt, atol=1e-12)
    # The generator includes contact: the body is on the floor and falls.
    assert qpos[0, 2] - qpos[-1, 2] > 0.25


def test_actions_matter(gen_model, gen):
    """Guard for the tests above: a different action changes the outcome."""
    acts = np.array(gen.actions)
    acts[5, 3] += 0.5
    out = simulate_frames(gen_model, _start(gen_model, gen), acts, gen.substeps)
    _, qpos, _ = split_state(gen_model, out.states[0])
    np.testing.assert_array_equal(qpos[:6], gen.qpos[:6])
    assert np.abs(qpos[7:] - gen.qpos[7:]).max() > 1e-3


def test_restart_mid_trajectory_is_exact(gen_model, gen):
    """With warm start disabled the next state depends only on (state, ctrl):
    a rollout from frame k of a full rollout reproduces its tail bit for bit."""
    full = simulate_frames(gen_model, _start(gen_model, gen), gen.actions, gen.substeps)
    for k in (1, 12, 29):
        tail = simulate_frames(gen_model, full.states[0, k], gen.actions[k:], gen.substeps)
        np.testing.assert_array_equal(tail.states[0], full.states[0, k:])


def test_batch_of_identical_inputs(gen_model, gen):
    s0 = _start(gen_model, gen)
    single = simulate_frames(gen_model, s0, gen.actions[:10], gen.substeps)
    B = 3
    pool = DataPool(gen_model, 2)
    batch = simulate_frames(gen_model, np.tile(s0, (B, 1)), np.tile(gen.actions[:10], (B, 1, 1)),
                            gen.substeps, pool)
    assert batch.states.shape == (B, 11, s0.size)
    for b in range(B):
        np.testing.assert_array_equal(batch.states[b], single.states[0])
    # One state broadcast against B action sequences, and B states against one sequence.
    acts = np.stack([gen.actions[:10], np.zeros((10, gen_model.nu))])
    mixed = simulate_frames(gen_model, s0, acts, gen.substeps, pool)
    np.testing.assert_array_equal(mixed.states[0], single.states[0])
    assert not np.array_equal(mixed.states[1], single.states[0])
    many = simulate_frames(gen_model, np.tile(s0, (2, 1)), gen.actions[:10], gen.substeps, pool)
    np.testing.assert_array_equal(many.states[1], single.states[0])


def test_zero_actions_returns_initial_state(gen_model, gen):
    s0 = _start(gen_model, gen)
    out = simulate_frames(gen_model, s0, np.zeros((0, gen_model.nu)), gen.substeps)
    assert out.states.shape == (1, 1, s0.size)
    np.testing.assert_array_equal(out.states[0, 0], s0)


def _assert_frozen_after(model, states, k):
    assert np.isfinite(states).all()
    np.testing.assert_array_equal(states[k:], np.broadcast_to(states[k - 1], states[k:].shape))
    _, _, qvel = split_state(model, states[:k])
    assert np.abs(qvel).max() <= 500.0


def test_divergence_huge_timestep():
    """A 0.5 s physics step with alternating full torques blows up; the
    rollout reports the first bad frame and keeps the last valid state after
    it instead of raising or returning NaN."""
    model = load_model(0.5)
    s0 = make_state(model, standing_qpos(model), np.zeros(model.nv))
    T = 20
    wild = np.where(np.arange(T)[:, None] % 2 == 0, 1.0, -1.0) * np.ones((T, model.nu))
    out = simulate_frames(model, s0, wild, 1)
    k = int(out.diverged_frame[0])
    assert 1 <= k <= T
    _assert_frozen_after(model, out.states[0], k)


def test_divergence_full_torque_in_batch(gen_model, gen):
    """At the normal 600 Hz step, every motor at +1 for a few frames spins
    the light feet and hands until MuJoCo's instability guard fires (it
    warns "Nan, Inf or huge value in QACC"); that batch member is marked
    diverged, the zero-action member of the same batch is not."""
    s0 = _start(gen_model, gen)
    acts = np.stack([np.ones((30, gen_model.nu)), np.zeros((30, gen_model.nu))])
    out = simulate_frames(gen_model, s0, acts, gen.substeps, DataPool(gen_model, 2))
    k = int(out.diverged_frame[0])
    assert 1 <= k <= 30
    _assert_frozen_after(gen_model, out.states[0], k)
    assert out.diverged_frame[1] == -1
    calm = simulate_frames(gen_model, s0, acts[1], gen.substeps)
    np.testing.assert_array_equal(out.states[1], calm.states[0])
