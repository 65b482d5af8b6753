"""Metrics on hand-made trajectories with hand-computed values, and the
verifier on a trajectory the simulator itself produced."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mocap_refine.clip import load_clip
from mocap_refine.generate import standing_qpos
from mocap_refine.metrics import (
    FLOOR_CONTACT_TOL_M, METRIC_COLUMNS,
    REFERENCE_CONTACT_MARGIN_M, Fall, contact_bodies, contact_falls, fall_check, fall_frame, floor_touch,
    imitation_reward, joint_errors, quat_angle, root_errors, root_rot_errors, summary_metrics,
)
from mocap_refine.model import JOINTS, layout, load_model
from mocap_refine.pipeline import pybullet_clip_path
from mocap_refine.reference import build_reference, geom_lowest_points, lowest_points
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

N_FALL = 20


def _frames(q, n=N_FALL):
    return np.tile(q, (n, 1))


def _turn_root(q, axis, angle_deg):
    """q with its root orientation turned by angle_deg about the world axis."""
    out = q.copy()
    r = Rotation.from_rotvec(np.radians(angle_deg) * np.asarray(axis, float) / np.linalg.norm(axis))
    out[3:7] = (r * Rotation.from_quat(q[3:7], scalar_first=True)).as_quat(scalar_first=True)
    return out


def _lying(model):
    """The standing pose turned face down (90 degrees about y; the root's x
    axis is its forward), its lowest point on the floor: chest, pelvis,
    head and hands are near the floor."""
    q = _turn_root(standing_qpos(model), [0, 1, 0], 90.0)
    q[2] -= lowest_points(model, q[None])[0]
    return q


def test_fall_height_rule(model):
    ref = _frames(standing_qpos(model))
    q = ref.copy()
    q[7:, 2] -= 0.3
    assert fall_check(model, q, ref) == Fall(7, "height")  # (the sunk body touches too: height wins)
    assert fall_frame(model, q, ref) == 7
    q = ref.copy()
    q[7:, 2] += 0.2  # below the 0.25 m threshold (lifted: nothing touches)
    assert fall_check(model, q, ref) == Fall(-1, "")
    q = ref.copy()
    q[12:, 2] += 0.26  # thrown upwards counts too
    assert fall_check(model, q, ref) == Fall(12, "height")
    q = ref.copy()
    q[5:, 0] += 3.0  # horizontal drift is not a fall
    assert fall_frame(model, q, ref) == -1


@pytest.mark.parametrize("k", [1, 9, N_FALL - 1])
def test_fall_orientation_rule_about_the_vertical(model, k):
    """Turning the standing body about the vertical changes no height: 61
    degrees from frame k falls at k for orientation, 59 degrees never."""
    stand = standing_qpos(model)
    ref = _frames(stand)
    q = ref.copy()
    q[k:] = _turn_root(stand, [0, 0, 1], 61.0)
    np.testing.assert_allclose(root_rot_errors(q, ref)[k:], 61.0, atol=1e-9)
    assert fall_check(model, q, ref) == Fall(k, "orientation")
    q[k:] = _turn_root(stand, [0, 0, 1], 59.0)
    assert fall_check(model, q, ref) == Fall(-1, "")


def test_fall_orientation_rule_is_the_geodesic_angle(model):
    """In the air (nothing near the floor, same root height) about a tilted
    axis: 61 degrees falls, 59 does not, the quaternion's sign is no turn."""
    stand = standing_qpos(model)
    stand[2] += 1.0
    ref = _frames(stand)
    q = ref.copy()
    q[4:] = _turn_root(stand, [1, 1, 0], 59.0)
    q[6:] = _turn_root(stand, [1, 1, 0], 61.0)
    assert fall_check(model, q, ref) == Fall(6, "orientation")
    q = ref.copy()
    q[3:, 3:7] *= -1.0
    assert fall_check(model, q, ref) == Fall(-1, "")


def test_contact_bodies_are_all_but_the_feet(model):
    bodies, geoms = contact_bodies(model)
    names = {mujoco_name(model, b) for b in bodies}
    assert "right_ankle" not in names and "left_ankle" not in names
    assert {"root", "chest", "neck", "right_knee", "left_wrist"} <= names
    assert len(bodies) == model.nbody - 3  # world and the two foot bodies
    assert sum(len(g) for g in geoms) == model.ngeom - 3  # floor and the two feet


def mujoco_name(model, body):
    import mujoco
    return mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, body)


def test_floor_touch_tolerance(model):
    """A body touches when its lowest point is below FLOOR_CONTACT_TOL_M."""
    lying = _lying(model)
    q = _frames(lying, 3)
    q[1, 2] += FLOOR_CONTACT_TOL_M - 1e-4
    q[2, 2] += FLOOR_CONTACT_TOL_M + 1e-4
    touch = floor_touch(model, q)
    assert touch[0].any() and touch[1].any() and not touch[2].any()
    # Standing: the feet touch but are not watched; the shins are 5.5 cm up.
    assert not floor_touch(model, standing_qpos(model)[None]).any()


def test_fall_contact_rule_lying_while_the_reference_floats(model):
    """The replay lies on the floor from frame k while the reference lies
    0.2 m above it (root height 0.2 m off: under the height rule; same
    orientation): a contact fall at k."""
    lying = _lying(model)
    ref = _frames(lying)
    ref[:, 2] += 0.2
    q = ref.copy()
    k = 8
    q[k:, 2] -= 0.2
    assert fall_check(model, q, ref) == Fall(k, "contact")


def test_fall_contact_rule_same_pose_in_both_is_no_fall(model):
    """A crawl/roll-like pose on the floor in replay and reference alike."""
    lying = _lying(model)
    q = _frames(lying)
    assert floor_touch(model, q).any(axis=1).all()
    assert fall_check(model, q, q.copy()) == Fall(-1, "")


def _limb_raised(model, q, joint):
    """q with `joint` (a ball joint) turned 90 degrees about its local y."""
    out = q.copy()
    a = _adr(model, joint)
    out[a:a + 4] = _rotated(q[a:a + 4], [0.0, 1.0, 0.0], np.pi / 2)
    return out


def _body_low(model, q, body):
    """Lowest point (m) of the geoms of `body` in pose q."""
    bodies, geoms = contact_bodies(model)
    b = [mujoco_name(model, i) for i in bodies].index(body)
    return float(geom_lowest_points(model, q[None], geoms[b])[0].min())


def test_fall_contact_reference_margin(model):
    """The replay lies on the floor (chest, pelvis, head and hands below
    FLOOR_CONTACT_TOL_M); the reference lies the same way, floating higher
    (no height fall). Matched while every body touching in the replay is in
    the reference within REFERENCE_CONTACT_MARGIN_M of the floor; a contact
    fall once the highest of them is above it."""
    q = _frames(_lying(model))
    bodies, _ = contact_bodies(model)
    names = [mujoco_name(model, b) for b in bodies]
    touching = [n for n, t in zip(names, floor_touch(model, q[:1])[0]) if t]
    assert {"root", "chest", "right_wrist"} <= set(touching)
    highest = max(_body_low(model, q[0], n) for n in touching)
    for dh, expected in ((-1e-3, Fall(-1, "")), (1e-3, Fall(0, "contact"))):
        ref = q.copy()
        ref[:, 2] += REFERENCE_CONTACT_MARGIN_M - highest + dh
        assert fall_check(model, q, ref) == expected, dh
    # The reference sinking into the floor (lowest point -0.08 m) while the
    # replay rests on it is no fall either.
    ref = q.copy()
    ref[:, 2] -= 0.08
    assert fall_check(model, q, ref) == Fall(-1, "")


@pytest.mark.parametrize("ref_low", [-0.04, 0.0, 0.03, 0.07])
def test_fall_contact_floor_clip_replay_a_few_cm_off_is_no_fall(model, ref_low):
    """A clip lying on the floor (crawl, roll, getup) whose mocap floats or
    sinks (lowest point ref_low), tracked perfectly by a replay resting on the
    floor or a few centimetres lower or higher than the reference: no fall.
    With the former single 0.03 m test for both sides a floating reference
    made the replay resting on the floor fall."""
    lying = _lying(model)
    ref = _frames(lying)
    ref[:, 2] += ref_low
    ref[::3, 2] += 0.01  # a little jitter from frame to frame
    for dz in (-0.04, -0.02, 0.02, 0.04):
        q = ref.copy()
        q[:, 2] += dz
        assert fall_check(model, q, ref) == Fall(-1, ""), dz
    grounded = ref.copy()
    grounded[:, 2] -= lowest_points(model, ref)  # each frame's lowest point on the floor
    assert fall_check(model, grounded, ref) == Fall(-1, "")
    if ref_low >= 0.03:
        assert contact_falls(model, grounded, ref, ref_margin_m=FLOOR_CONTACT_TOL_M).any()


def test_fall_contact_hand_or_knee_on_the_floor(model):
    """The reference lies face down with its right arm (or right leg) turned
    90 degrees up, the hand (knee) more than 0.2 m above the floor; from
    frame k the replay's hand (knee) is on the floor, everything else as
    in the reference: a contact fall at k."""
    lying = _lying(model)
    k = 9
    for joint, body in (("right_shoulder", "right_wrist"), ("right_hip", "right_knee")):
        up = _limb_raised(model, lying, joint)
        assert _body_low(model, up, body) > 0.2
        down = lying.copy()
        down[2] -= _body_low(model, down, body)  # that body's lowest point on the floor
        assert abs(down[2] - lying[2]) < 0.1 and _body_low(model, down, body) < FLOOR_CONTACT_TOL_M
        ref = _frames(up)
        ref[:, 2] = down[2]  # same root height as the replay: only the limb differs
        q = ref.copy()
        q[k:] = down
        assert fall_check(model, q, ref) == Fall(k, "contact"), body


@pytest.mark.parametrize("clip", ["crawl", "roll", "getup_faceup", "getup_facedown"])
def test_floor_clips_tracked_on_the_floor_do_not_fall(clip):
    """The DeepMimic clips lying on the floor, ground-corrected as the
    results use them, replayed with each frame's lowest point put on the
    floor (a perfect tracker resting where the mocap floats or sinks): no
    fall. The former single 0.03 m test flagged every one of them."""
    ref, _ = build_reference(load_clip(pybullet_clip_path(clip)))
    model = load_model(ref.physics_dt)
    q = ref.qpos.copy()
    low = lowest_points(model, q)
    q[:, 2] -= np.where(np.abs(low) < 0.15, low, 0.0)
    assert fall_check(model, q, ref.qpos) == Fall(-1, "")
    assert contact_falls(model, q, ref.qpos, ref_margin_m=FLOOR_CONTACT_TOL_M).any()


def test_fall_contact_window(model):
    """The reference's contact counts within FALL_CONTACT_WINDOW_FRAMES (2)
    frames either side: lying from frame 10 in the replay, the reference
    lies from frame 12 (no fall) or from frame 13 (fall at 10)."""
    lying = _lying(model)
    floating = lying.copy()
    floating[2] += 0.2
    q = _frames(floating)
    q[10:] = lying
    for start, expected in ((12, Fall(-1, "")), (13, Fall(10, "contact")), (8, Fall(-1, ""))):
        ref = _frames(floating)
        ref[start:] = lying
        assert fall_check(model, q, ref) == expected, start
    # The reference touching only before the window does not count either.
    ref = _frames(floating)
    ref[:7] = lying
    assert fall_check(model, q, ref) == Fall(10, "contact")


def test_fall_contact_standing_reference(model):
    """Pelvis and chest on the floor while the reference stands: the contact
    criterion fires at that frame (the root is also far too low, and height
    is reported first at the same frame)."""
    ref = _frames(standing_qpos(model))
    q = ref.copy()
    q[11:] = _lying(model)
    c = contact_falls(model, q, ref)
    assert c.tolist() == [t >= 11 for t in range(N_FALL)]
    assert fall_check(model, q, ref) == Fall(11, "height")


def test_feet_on_the_floor_are_no_contact_fall(model):
    """Standing on the floor while the reference floats 0.2 m up: only the
    feet touch, and feet are not watched."""
    stand = standing_qpos(model)
    ref = _frames(stand)
    ref[:, 2] += 0.2
    assert fall_check(model, _frames(stand), ref) == Fall(-1, "")


def test_fall_check_rejects_mismatched_shapes(model):
    q = _frames(standing_qpos(model))
    with pytest.raises(ValueError, match="differ"):
        fall_check(model, q, q[:-1])


def test_root_rot_errors_known_angle(model):
    stand = standing_qpos(model)
    ref = _frames(stand, 4)
    q = ref.copy()
    q[1:] = _turn_root(stand, [0.0, 0.6, 0.8], 30.0)
    np.testing.assert_allclose(root_rot_errors(q, ref), [0.0, 30.0, 30.0, 30.0], atol=1e-9)


# ----------------------------------------------------------------- summary

def _summary(T, fall, root_rot_err=None, fall_reason=""):
    frames = np.arange(T + 1)
    joint_err = np.tile((0.01 * frames)[:, None], (1, N_JOINTS))
    joint_err[:, 0] += 0.12  # one joint off by 0.12 everywhere: +0.01 on the mean
    root_err = 0.1 * frames
    reward = np.full(T + 1, 0.5)
    reward[0] = 1.0
    actions = np.zeros((T, 28))
    actions[0, :3] = [1.0, -1.0, 0.999]  # two saturated entries
    single = np.linspace(0.0, 0.2, T)
    return summary_metrics(joint_err, root_err, reward, fall, actions, single,
                           root_rot_err=root_rot_err, fall_reason=fall_reason)


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
    assert np.isnan(m["root_rot_err50_deg"])  # no root orientation error given


def test_summary_root_rot_err50_is_the_mean_over_frames_1_to_50():
    """A constant 37 degree root error over frames 1..50 (0 at frame 0, 90
    after frame 50) gives 37; a short clip averages frames 1..T."""
    rot = np.full(61, 37.0)
    rot[0] = 0.0
    rot[51:] = 90.0
    m = _summary(60, 11, root_rot_err=rot, fall_reason="orientation")
    assert m["root_rot_err50_deg"] == pytest.approx(37.0)
    assert m["fall_reason"] == "orientation"
    m = _summary(20, -1, root_rot_err=np.r_[0.0, np.linspace(10.0, 30.0, 20)], fall_reason="height")
    assert m["root_rot_err50_deg"] == pytest.approx(20.0)
    assert m["fall_reason"] == ""  # no fall, no reason


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


def test_verify_fall_reason_and_root_rotation(gen_model, gen):
    """The exact actions never fall (reason ""), root rotation error 0; a
    NaN action 5 makes the physics diverge at frame 6 before any fall rule
    fires: fall at 6 for the reason "diverged"."""
    ver = verify(gen_model, gen.qpos, gen.qvel, gen.actions, gen.frame_dt, gen.substeps)
    assert ver.fall_reason == ver.metrics["fall_reason"] == ""
    assert ver.root_rot_err.shape == (gen.qpos.shape[0],) and ver.root_rot_err.max() < 1e-4
    assert ver.metrics["root_rot_err50_deg"] < 1e-4
    acts = np.array(gen.actions)
    acts[5] = np.nan
    ver = verify(gen_model, gen.qpos, gen.qvel, acts, gen.frame_dt, gen.substeps)
    assert ver.diverged_frame == 6 and ver.status == "diverged at frame 6"
    assert ver.metrics["fall_frame"] == 6 and ver.fall_reason == ver.metrics["fall_reason"] == "diverged"


def test_verify_rejects_mismatched_lengths(gen_model, gen):
    with pytest.raises(ValueError, match="30 actions need 31 reference frames, got 30"):
        verify(gen_model, gen.qpos[:-1], gen.qvel[:-1], gen.actions, gen.frame_dt, gen.substeps)
