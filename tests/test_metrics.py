"""Metrics on hand-made trajectories with hand-computed values, and the
verifier on a trajectory the simulator itself produced."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mocap_refine.generate import standing_qpos
from mocap_refine.metrics import (
    METRIC_COLUMNS, fall_frame, imitation_reward, joint_errors, quat_angle, root_errors,
    summary_metrics,
)
from mocap_refine.model import JOINTS, layout
from mocap_refine.verify import verify

N_JOINTS = 12


def _rotated(q_wxyz, axis, angle):
    """Local quaternion q composed with a rotation of `angle` about `axis`."""
    r = Rotation.from_quat(q_wxyz, scalar_first=True) * Rotation.from_rotvec(angle * np.asarray(axis, float))
    return r.as_quat(scalar_first=True)


@pytest.fixture(scope="module")
def stand(model):
    """(5, nq) standing poses, (5, nv) zero velocities."""
    return np.tile(standing_qpos(model), (5, 1)), np.zeros((5, model.nv))


def _adr(model, joint):
    return layout(model).qpos_adr[JOINTS.index(joint)]


# ----------------------------------------------------------------- angles

def test_quat_angle_known_values():
    axis = np.array([1.0, 2.0, -2.0]) / 3.0
    ident = np.array([1.0, 0, 0, 0])
    for a in (0.0, 0.3, 1.0, 3.0):
        q = Rotation.from_rotvec(a * axis).as_quat(scalar_first=True)
        assert quat_angle(ident, q) == pytest.approx(a, abs=1e-7)
        assert quat_angle(-q, ident) == pytest.approx(a, abs=1e-7)  # sign does not matter
    # 1.5 pi one way is 0.5 pi the other way: the geodesic angle is <= pi.
    q = Rotation.from_rotvec(1.5 * np.pi * axis).as_quat(scalar_first=True)
    assert quat_angle(ident, q) == pytest.approx(0.5 * np.pi, abs=1e-7)
    # Relative angle between two rotations about one axis, vectorised.
    q1 = Rotation.from_rotvec(np.outer([0.2, 0.5], axis)).as_quat(scalar_first=True)
    q2 = Rotation.from_rotvec(np.outer([0.9, -0.1], axis)).as_quat(scalar_first=True)
    np.testing.assert_allclose(quat_angle(q1, q2), [0.7, 0.6], atol=1e-7)


def test_joint_errors_ball_and_hinge(model, stand):
    """One ball joint turned 0.3 rad, one knee bent 0.2 rad more: errors 0.3
    and 0.2 at those joints, 0 elsewhere, frame mean 0.5 / 12."""
    ref, _ = stand
    q = ref.copy()
    hip, knee, neck = _adr(model, "right_hip"), _adr(model, "left_knee"), _adr(model, "neck")
    q[:, hip:hip + 4] = _rotated(ref[:, hip:hip + 4], [0.0, 0.6, 0.8], 0.3)
    q[:, knee] -= 0.2
    q[:, neck:neck + 4] *= -1.0  # same rotation, other sign: no error
    err = joint_errors(model, q, ref)
    assert err.shape == (5, N_JOINTS)
    expected = np.zeros(N_JOINTS)
    expected[JOINTS.index("right_hip")] = 0.3
    expected[JOINTS.index("left_knee")] = 0.2
    np.testing.assert_allclose(err, np.tile(expected, (5, 1)), atol=1e-7)
    np.testing.assert_allclose(err.mean(axis=1), 0.5 / 12, atol=1e-8)
    # The root's rotation is not an actuated joint: turning the whole body
    # changes no joint error.
    q[:, 3:7] = _rotated(ref[:, 3:7], [0, 0, 1], 1.0)
    np.testing.assert_allclose(joint_errors(model, q, ref), np.tile(expected, (5, 1)), atol=1e-7)


def test_root_errors():
    q = np.zeros((3, 43))
    ref = np.zeros((3, 43))
    q[1, :3] = [0.3, 0.4, 0.0]
    q[2, :3] = [1.0, 2.0, 2.0]
    q[:, 3:7] = [0, 1, 0, 0]  # rotations do not count
    np.testing.assert_allclose(root_errors(q, ref), [0.0, 0.5, 3.0])


# ----------------------------------------------------------------- fall

def test_fall_frame():
    ref = np.zeros((20, 43))
    ref[:, 2] = 0.9
    q = ref.copy()
    q[7:, 2] -= 0.3
    assert fall_frame(q, ref) == 7
    q = ref.copy()
    q[7:, 2] -= 0.2  # below the 0.25 m threshold
    assert fall_frame(q, ref) == -1
    q = ref.copy()
    q[12:, 2] += 0.26  # thrown upwards counts too
    assert fall_frame(q, ref) == 12
    q = ref.copy()
    q[5:, 0] += 3.0  # horizontal drift is not a fall
    assert fall_frame(q, ref) == -1


# ----------------------------------------------------------------- summary

def _summary(T, fall):
    frames = np.arange(T + 1)
    joint_err = np.tile((0.01 * frames)[:, None], (1, N_JOINTS))
    joint_err[:, 0] += 0.12  # one joint off by 0.12 everywhere: +0.01 on the mean
    root_err = 0.1 * frames
    reward = np.full(T + 1, 0.5)
    reward[0] = 1.0
    actions = np.zeros((T, 28))
    actions[0, :3] = [1.0, -1.0, 0.999]  # two saturated entries
    single = np.linspace(0.0, 0.2, T)
    return summary_metrics(joint_err, root_err, reward, fall, actions, single)


def test_summary_metrics_long():
    m = _summary(60, 11)
    assert m["err50_rad"] == pytest.approx(0.01 * 25.5 + 0.01)  # frames 1..50
    assert m["err_full_rad"] == pytest.approx(0.01 * 30.5 + 0.01)  # frames 1..60
    assert m["root_drift50_m"] == pytest.approx(5.0)
    assert m["root_drift_end_m"] == pytest.approx(6.0)
    assert m["reward_mean"] == pytest.approx(0.5)  # frames 1..T
    assert m["fall_frame"] == 11
    assert m["tracked_fraction"] == pytest.approx(10 / 60)
    assert m["saturated_fraction"] == pytest.approx(2 / (60 * 28))
    assert m["single_step_err_rad"] == pytest.approx(0.1)
    assert set(m) <= set(METRIC_COLUMNS)


def test_summary_metrics_short_clip_and_no_fall():
    m = _summary(20, -1)
    assert m["err50_rad"] == pytest.approx(0.01 * 10.5 + 0.01)  # frames 1..20
    assert m["err50_rad"] == m["err_full_rad"]
    assert m["root_drift50_m"] == pytest.approx(2.0) == m["root_drift_end_m"]
    assert m["fall_frame"] == -1 and m["tracked_fraction"] == 1.0


# ----------------------------------------------------------------- reward

def test_reward_identical_is_one(model, gen):
    """Identical trajectories (moving, with velocities) score exactly 1."""
    r = imitation_reward(model, gen.qpos, gen.qvel, gen.qpos, gen.qvel)
    assert r.shape == (gen.qpos.shape[0],)
    np.testing.assert_allclose(r, 1.0, atol=1e-12)


def test_reward_single_joint_pose_term(model, stand):
    """The neck moves no end effector and, at rest, no centre-of-mass
    velocity: only the pose term changes, to exp(-2 * w_neck * theta^2)
    with w_neck = 0.3, theta = 0.3 rad (n/15 = 1)."""
    ref, vel = stand
    q = ref.copy()
    neck = _adr(model, "neck")
    q[:, neck:neck + 4] = _rotated(ref[:, neck:neck + 4], [1.0, 0.0, 0.0], 0.3)
    r = imitation_reward(model, q, vel, ref, vel)
    r_pose = np.exp(-2.0 * 0.3 * 0.3 ** 2)
    np.testing.assert_allclose(r, 0.5 * r_pose + 0.05 + 0.15 + 0.2 + 0.1, rtol=1e-12)


def test_reward_root_offsets(model, stand):
    """Root moved 0.1 m sideways: only r_root = exp(-5 * 0.1^2) changes (end
    effectors are measured from the root, heights from the ground). Moved
    0.1 m up: additionally the four end-effector heights are off by 0.1 m,
    r_end = exp(-10 * 4 * 0.1^2)."""
    ref, vel = stand
    q = ref.copy()
    q[:, 1] += 0.1
    r = imitation_reward(model, q, vel, ref, vel)
    np.testing.assert_allclose(r, 0.5 + 0.05 + 0.15 + 0.2 * np.exp(-0.05) + 0.1, rtol=1e-12)
    q = ref.copy()
    q[:, 2] += 0.1
    r = imitation_reward(model, q, vel, ref, vel)
    np.testing.assert_allclose(r, 0.5 + 0.05 + 0.15 * np.exp(-0.4) + 0.2 * np.exp(-0.05) + 0.1, rtol=1e-12)


def test_reward_root_rotation_weight(model, stand):
    """Turning the whole body by 0.5 rad about the vertical changes the root
    pose term (w_root = 1) and r_root's rotation term (0.1 * angle^2) only:
    the heading frame turns with the body."""
    ref, vel = stand
    q = ref.copy()
    q[:, 3:7] = _rotated(ref[:, 3:7], [0, 0, 1], 0.5)
    r = imitation_reward(model, q, vel, ref, vel)
    expected = 0.5 * np.exp(-2 * 0.25) + 0.05 + 0.15 + 0.2 * np.exp(-5 * 0.1 * 0.25) + 0.1
    np.testing.assert_allclose(r, expected, rtol=1e-9)


# ----------------------------------------------------------------- verify

def test_verify_exact_actions_give_zero_error(gen_model, gen):
    """The generator's own actions replayed against its own states: every
    error is 0 to rounding, the reward 1, no fall, status ok."""
    ver = verify(gen_model, gen.qpos, gen.qvel, gen.actions, gen.frame_dt, gen.substeps)
    T = gen.actions.shape[0]
    assert ver.joint_err.shape == (T + 1, N_JOINTS) and ver.root_err.shape == (T + 1,)
    assert ver.single_step_err.shape == (T,)
    assert ver.joint_err.max() < 1e-6
    assert ver.root_err.max() < 1e-9
    assert ver.single_step_err.max() < 1e-6
    np.testing.assert_allclose(ver.reward, 1.0, atol=1e-9)
    m = ver.metrics
    assert m["fall_frame"] == -1 and m["tracked_fraction"] == 1.0
    assert m["err50_rad"] < 1e-6 and m["root_drift_end_m"] < 1e-9
    assert ver.status == "ok"


def test_verify_single_step_isolates_a_bad_action(gen_model, gen):
    """Perturbing action 10 spoils the single-step test at frame 10 only,
    and the open-loop replay from frame 11 on."""
    acts = np.array(gen.actions)
    acts[10] = np.clip(acts[10] + 0.5, -1, 1)
    ver = verify(gen_model, gen.qpos, gen.qvel, acts, gen.frame_dt, gen.substeps)
    bad = ver.single_step_err > 1e-6
    assert bad.tolist() == [t == 10 for t in range(len(acts))]
    per_frame = ver.joint_err.mean(axis=1)
    assert per_frame[:11].max() < 1e-6 and per_frame[11] > 1e-3
    # the other frames contribute < 1e-6 each, so the mean is frame 10's share
    assert ver.metrics["single_step_err_rad"] == pytest.approx(ver.single_step_err[10] / len(acts), abs=1e-6)


def test_verify_rejects_mismatched_lengths(gen_model, gen):
    with pytest.raises(ValueError, match="30 actions need 31 reference frames, got 30"):
        verify(gen_model, gen.qpos[:-1], gen.qvel[:-1], gen.actions, gen.frame_dt, gen.substeps)
