"""DeepMimic clip IO: validation, the Y-up -> Z-up conversion, the round trip
through a file, finite-difference velocities, and cycle repetition."""

from __future__ import annotations

import json

import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mocap_refine.clip import (
    DEEPMIMIC_CLIPS, ClipError, finite_difference_qvel, frames_to_qpos, load_clip, qpos_to_frames,
    repeat_cycles, write_clip,
)
from mocap_refine.generate import generate_trajectory, standing_qpos
from mocap_refine.model import HINGE_JOINTS, JOINTS, layout, load_model
from mocap_refine.pipeline import pybullet_clip_path
from mocap_refine.reference import build_reference, ground_shift, lowest_points
from mocap_refine.sim import make_state, simulate_frames, split_state

# Frame columns from DEEPMIMIC_FACTS.md (independent of the package's table).
ROOT_POS, ROOT_QUAT, CHEST_QUAT, NECK_QUAT = slice(1, 4), slice(4, 8), slice(8, 12), slice(12, 16)
RIGHT_KNEE_COL = 20
FOOT_GEOMS = ("right_foot", "left_foot")


def quat_rows_equal(q1, q2, atol):
    """Unit quaternions (..., 4) equal as rotations: q and -q are the same."""
    d = np.minimum(np.abs(q1 - q2).max(axis=-1), np.abs(q1 + q2).max(axis=-1))
    return bool((d <= atol).all())


def identity_frame(root_pos=(0.0, 0.9, 0.0)) -> np.ndarray:
    """One DeepMimic frame: given root position, all rotations identity,
    knees and elbows straight."""
    fr = np.zeros(44)
    fr[0] = 1 / 30
    fr[ROOT_POS] = root_pos
    for name_col in (4, 8, 12, 16, 21, 25, 30, 35, 39):  # every quaternion's w
        fr[name_col] = 1.0
    return fr


def body_pos(model, qpos, name):
    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    mujoco.mj_kinematics(model, data)
    return data.xpos[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)].copy()


# ----------------------------------------------------------------- round trip

def test_generated_clip_round_trip(gen, gen_model, gen_clip):
    clip = load_clip(gen_clip)
    assert clip.n_frames == gen.qpos.shape[0]
    assert clip.loop == "none"
    np.testing.assert_allclose(clip.frame_dt, gen.frame_dt, rtol=1e-11)
    qpos = frames_to_qpos(gen_model, clip.frames)
    # Root position and hinge angles are plain numbers: equal to 1e-9.
    lay = layout(gen_model)
    scalars = [0, 1, 2] + [adr for n, adr in zip(JOINTS, lay.qpos_adr) if n in HINGE_JOINTS]
    np.testing.assert_allclose(qpos[:, scalars], gen.qpos[:, scalars], rtol=0, atol=1e-9)
    # Quaternions: equal up to sign (q and -q are one rotation).
    quats = [3] + [adr for n, adr in zip(JOINTS, lay.qpos_adr) if n not in HINGE_JOINTS]
    for adr in quats:
        assert quat_rows_equal(qpos[:, adr:adr + 4], gen.qpos[:, adr:adr + 4], 1e-9), adr
    # The converted quaternions are sign-continuous frame to frame.
    for adr in quats:
        q = qpos[:, adr:adr + 4]
        assert (np.sum(q[1:] * q[:-1], axis=1) >= 0).all()


def test_qpos_frames_inverse(gen, gen_model):
    """qpos -> frames -> qpos is the identity (as rotations)."""
    frames = qpos_to_frames(gen_model, gen.qpos, gen.frame_dt)
    assert frames.shape == (gen.qpos.shape[0], 44)
    np.testing.assert_allclose(frames[:, 0], gen.frame_dt)
    back = frames_to_qpos(gen_model, frames)
    lay = layout(gen_model)
    for adr in [3] + [a for n, a in zip(JOINTS, lay.qpos_adr) if n not in HINGE_JOINTS]:
        assert quat_rows_equal(back[:, adr:adr + 4], gen.qpos[:, adr:adr + 4], 1e-12)
    np.testing.assert_allclose(back[:, :3], gen.qpos[:, :3], atol=1e-12)


# ----------------------------------------------------------------- axes

def test_translation_axes(model):
    """DeepMimic +x (forward) -> MuJoCo +x; +y (up) -> +z; +z (right) -> -y."""
    frames = np.stack([identity_frame((1.0, 0.0, 0.0)), identity_frame((0.0, 1.0, 0.0)),
                       identity_frame((0.0, 0.0, 1.0))])
    qpos = frames_to_qpos(model, frames)
    np.testing.assert_allclose(qpos[:, :3], [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-15)


def test_rotation_axes(model):
    """A yaw in DeepMimic (about its up axis y) is a yaw about MuJoCo's z."""
    a = 0.7
    fr = identity_frame()
    fr[ROOT_QUAT] = [np.cos(a / 2), 0.0, np.sin(a / 2), 0.0]
    q = frames_to_qpos(model, np.stack([fr, fr]))[0, 3:7]
    assert quat_rows_equal(q, np.array([np.cos(a / 2), 0.0, 0.0, np.sin(a / 2)]), 1e-12)


def test_right_side_and_knee_direction(model):
    """The right hip is at DeepMimic z = +0.085, the right of a body facing
    +x, which in MuJoCo (Z-up, x forward) is -y. A negative DeepMimic knee
    angle bends the shin backwards: the ankle moves behind (-x) the knee."""
    fr = identity_frame()
    qpos = frames_to_qpos(model, np.stack([fr, fr]))[0]
    right, left = body_pos(model, qpos, "right_hip"), body_pos(model, qpos, "left_hip")
    np.testing.assert_allclose(right[1], -0.084887, atol=1e-6)
    np.testing.assert_allclose(left[1], +0.084887, atol=1e-6)
    fr[RIGHT_KNEE_COL] = -1.0
    bent = frames_to_qpos(model, np.stack([fr, fr]))[0]
    knee, ankle = body_pos(model, bent, "right_knee"), body_pos(model, bent, "right_ankle")
    np.testing.assert_allclose(ankle[0] - knee[0], -0.40987 * np.sin(1.0), atol=1e-6)
    assert ankle[2] < knee[2]


@pytest.mark.parametrize("name", ["walk", "dance_a"])
def test_real_clip_stands_on_floor(model, name):
    """Frame 0 of real clips: feet within 2 cm of the floor (unshifted), head
    well above the pelvis, the standing foot a leg's length below the pelvis
    (dance_a lifts the other foot)."""
    clip = load_clip(pybullet_clip_path(name))
    qpos = frames_to_qpos(model, clip.frames[:2])
    feet = lowest_points(model, qpos[:1], FOOT_GEOMS)[0]
    assert abs(feet) < 0.02, feet
    head, pelvis = body_pos(model, qpos[0], "neck"), body_pos(model, qpos[0], "root")
    assert head[2] > pelvis[2] + 0.3
    ankles = [body_pos(model, qpos[0], f)[2] for f in ("right_ankle", "left_ankle")]
    assert min(ankles) < pelvis[2] - 0.6 and max(ankles) < pelvis[2]


def test_generated_clip_frame0_stands(gen_model, gen_clip):
    """The generator's standing frame, read back from its Y-up clip file."""
    qpos = frames_to_qpos(gen_model, load_clip(gen_clip).frames)
    assert abs(lowest_points(gen_model, qpos[:1], FOOT_GEOMS)[0]) < 0.02
    assert body_pos(gen_model, qpos[0], "neck")[2] > body_pos(gen_model, qpos[0], "root")[2] + 0.3


# ----------------------------------------------------------------- validation

def _base_frames(gen_clip) -> list:
    return json.loads(gen_clip.read_text())["Frames"][:3]


def _set(frames, i, col, value):
    frames = json.loads(json.dumps(frames))
    frames[i][col] = value
    return frames


def _scale_quat(frames, i, cols, factor):
    frames = json.loads(json.dumps(frames))
    q = np.array(frames[i][cols]) * factor
    frames[i][cols] = q.tolist()
    return frames


BROKEN = {
    # id: (builder(frames) -> file text, substrings the message must contain)
    "not_json": (lambda f: '{"Loop": "none", "Frames": [[0.1, ', ["not valid JSON"]),
    "no_frames": (lambda f: json.dumps({"Loop": "none"}), ['"Frames"']),
    "not_an_object": (lambda f: json.dumps(f), ['"Frames"']),
    "one_frame": (lambda f: json.dumps({"Loop": "none", "Frames": f[:1]}), ["at least 2 frames", "has 1"]),
    "frame_43_values": (lambda f: json.dumps({"Loop": "none", "Frames": [f[0], f[1][:43], f[2]]}),
                        ["frame 1", "43 values", "expected 44"]),
    "string_value": (lambda f: json.dumps({"Loop": "none", "Frames": _set(f, 1, 5, "0.5")}),
                     ["frame 1", "root quaternion x (value 5)", "not a number"]),
    "bad_loop": (lambda f: json.dumps({"Loop": "forever", "Frames": f}), ['"Loop"', "forever"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_clip_rejected(tmp_path, gen_clip, case):
    build, needles = BROKEN[case]
    path = tmp_path / f"{case}.txt"
    path.write_text(build(_base_frames(gen_clip)))
    with pytest.raises(ClipError) as err:
        load_clip(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


# Plausibility limits (issue 14): every bad value is named by file, frame,
# column and value. Builders take the generated clip's first 3 frames (1/30 s
# apart) and return the frames to write.

def _still(f):
    """Frame 2 a copy of frame 1 (nothing moves between them) and frame 1
    lasting 1/120 s: a speed set up between frames 1 and 2 is the only one."""
    f = json.loads(json.dumps(f))
    f[2] = list(f[1])
    f[1][0] = 1 / 120
    return f


def _turn(f, cols, angle):
    """Frame 2's quaternion at cols = frame 1's turned by `angle` rad about its local x."""
    f = _still(f)
    q = Rotation.from_quat(f[1][cols], scalar_first=True) * Rotation.from_rotvec([angle, 0, 0])
    f[2][cols] = q.as_quat(scalar_first=True).tolist()
    return f


def _moved(f, i, col, delta):
    f = _still(f)
    f[i][col] += delta
    return f


def _long_clip(f):
    """3602 frames of 1 s each (the last one's unused): 3601 s in all."""
    return [[1.0] + f[0][1:]] * 3602


IMPLAUSIBLE = {
    # id: (builder(frames) -> frames, frame, column named, value shown)
    "nan_right_hip": (lambda f: _set(f, 2, 17, float("nan")), 2, "right_hip quaternion x (value 17)", "nan"),
    "inf_root_height": (lambda f: _set(f, 1, 2, float("inf")), 1, "root y (value 2)", "inf"),
    "neg_inf_right_knee": (lambda f: _set(f, 0, 20, float("-inf")), 0, "right_knee (value 20)", "-inf"),
    "zero_duration": (lambda f: _set(f, 1, 0, 0.0), 1, "duration (value 0)", "0.0 s, not positive"),
    "negative_duration": (lambda f: _set(f, 0, 0, -0.03), 0, "duration (value 0)", "-0.03 s, not positive"),
    "duration_1.5s": (lambda f: _set(f, 1, 0, 1.5), 1, "duration (value 0)", "1.5 s, above the 1 s limit"),
    "clip_3601s": (_long_clip, 3601, "durations, value 0", "3601 s"),
    "root_quat_norm_1.6": (lambda f: _scale_quat(f, 1, ROOT_QUAT, 1.6), 1, "root quaternion (values 4-7)",
                           "norm 1.6"),
    "neck_quat_norm_0.3": (lambda f: _scale_quat(f, 2, NECK_QUAT, 0.3), 2, "neck quaternion (values 12-15)",
                           "norm 0.3"),
    "right_knee_-7rad": (lambda f: _set(f, 1, 20, -7.0), 1, "right_knee (value 20)", "-7 rad"),
    "left_elbow_6.5rad": (lambda f: _set(f, 2, 43, 6.5), 2, "left_elbow (value 43)", "6.5 rad"),
    "root_height_5.5m": (lambda f: _set(f, 1, 2, 5.5), 1, "root y (value 2, the height)", "5.5 m"),
    "root_height_-1.2m": (lambda f: _set(f, 2, 2, -1.2), 2, "root y (value 2, the height)", "-1.2 m"),
    "root_teleport_0.2m": (lambda f: _moved(f, 2, 1, 0.2), 2, "root position (values 1-3)", "24 m/s"),
    "right_elbow_1rad_in_8ms": (lambda f: _moved(f, 2, 29, 1.0), 2, "right_elbow (value 29)", "120 rad/s"),
    "left_hip_1rad_in_8ms": (lambda f: _turn(f, slice(30, 34), 1.0), 2, "left_hip quaternion (values 30-33)",
                             "120 rad/s"),
    "root_turns_1rad_in_8ms": (lambda f: _turn(f, ROOT_QUAT, 1.0), 2, "root quaternion (values 4-7)",
                               "120 rad/s"),
}


@pytest.mark.parametrize("case", list(IMPLAUSIBLE))
def test_implausible_clip_rejected(tmp_path, gen_clip, case):
    """One line naming the file, the frame, the column and the value."""
    build, frame, column, value = IMPLAUSIBLE[case]
    path = tmp_path / f"{case}.txt"
    path.write_text(json.dumps({"Loop": "none", "Frames": build(_base_frames(gen_clip))}))
    with pytest.raises(ClipError) as err:
        load_clip(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: frame {frame}: "), msg
    assert "\n" not in msg
    assert column in msg and value in msg, (column, value, msg)


def _set_all(f, col, value):
    """Every frame's column col set to value (so nothing moves through it)."""
    for i in range(len(f)):
        f = _set(f, i, col, value)
    return f


INSIDE_LIMITS = {
    # id: builder(frames) -> frames just inside a limit
    "right_knee_-6.28rad": lambda f: _set_all(f, 20, -6.28),
    "root_height_4.99m": lambda f: _set_all(f, 2, 4.99),
    "root_height_-0.99m": lambda f: _set_all(f, 2, -0.99),
    "duration_1s": lambda f: _set(f, 0, 0, 1.0),
    "root_19.2m_s": lambda f: _moved(f, 2, 1, 0.16),
    "right_elbow_96rad_s": lambda f: _moved(f, 2, 29, 0.8),
    "left_hip_96rad_s": lambda f: _turn(f, slice(30, 34), 0.8),
    "root_quat_norm_1.45": lambda f: _scale_quat(f, 1, ROOT_QUAT, 1.45),
    "last_duration_unused": lambda f: _set(_set(f, 2, 0, 5.0), 1, 0, 1 / 30),
}


@pytest.mark.parametrize("case", list(INSIDE_LIMITS))
def test_values_inside_limits_load(tmp_path, gen_clip, case):
    path = tmp_path / f"{case}.txt"
    path.write_text(json.dumps({"Loop": "none", "Frames": INSIDE_LIMITS[case](_base_frames(gen_clip))}))
    assert load_clip(path).n_frames >= 3


def test_limits_are_module_constants():
    """The limits the loader enforces, with their units (README, "Clip checks")."""
    from mocap_refine import clip
    assert clip.MIN_FRAMES == 2
    assert clip.FRAME_DURATION_MAX_S == 1.0 and clip.CLIP_DURATION_MAX_S == 3600.0
    assert clip.HINGE_ANGLE_MAX_RAD == pytest.approx(2 * np.pi)
    assert clip.ROOT_HEIGHT_RANGE_M == (-1.0, 5.0)
    assert clip.ROOT_SPEED_MAX_M_S == 20.0 and clip.JOINT_SPEED_MAX_RAD_S == 100.0
    assert clip.QUAT_NORM_REJECT == 0.5
    assert len(clip.COLUMN_NAMES) == 44 and clip.COLUMN_NAMES[20] == "right_knee"


def test_missing_clip_file(tmp_path):
    with pytest.raises(ClipError, match="cannot read"):
        load_clip(tmp_path / "nope.txt")


def test_near_unit_quaternion_normalised(tmp_path, gen_clip):
    """Norm 1.0005 is within the 1e-3 tolerance: accepted and normalised;
    the last frame's duration is unused, so 0 is fine there."""
    frames = _scale_quat(_base_frames(gen_clip), 1, CHEST_QUAT, 1.0005)
    frames = _set(frames, 2, 0, 0.0)
    path = tmp_path / "ok.txt"
    path.write_text(json.dumps({"Loop": "wrap", "Frames": frames}))
    clip = load_clip(path)
    assert clip.loop == "wrap"
    np.testing.assert_allclose(np.linalg.norm(clip.frames[1, CHEST_QUAT]), 1.0, atol=1e-15)
    np.testing.assert_allclose(clip.frames[1, CHEST_QUAT], np.array(frames[1][CHEST_QUAT]) / 1.0005, atol=1e-12)
    assert clip.quat_norm_fixed == 0


def test_off_norm_quaternion_normalised_and_counted(tmp_path, gen_clip):
    """Real DeepMimic clips carry quaternions off by up to 0.42 (kick);
    within QUAT_NORM_REJECT they are normalised and counted, not rejected."""
    frames = _scale_quat(_base_frames(gen_clip), 1, CHEST_QUAT, 0.8)
    frames = _scale_quat(frames, 2, ROOT_QUAT, 1.01)
    path = tmp_path / "off.txt"
    path.write_text(json.dumps({"Loop": "none", "Frames": frames}))
    clip = load_clip(path)
    assert clip.quat_norm_fixed == 2
    assert clip.quat_norm_max_dev == pytest.approx(0.2, abs=1e-9)
    np.testing.assert_allclose(clip.frames[1, CHEST_QUAT], np.array(frames[1][CHEST_QUAT]) / 0.8, atol=1e-12)


@pytest.mark.parametrize("name", DEEPMIMIC_CLIPS)
def test_real_clips_load_unchanged(name):
    """Every library clip passes the plausibility checks, and the loader
    keeps the file's numbers: durations, positions and hinge angles exactly,
    quaternions divided by their norm."""
    path = pybullet_clip_path(name)
    clip = load_clip(path)
    raw = np.array(json.loads(path.read_text())["Frames"], dtype=float)
    expected = raw.copy()
    for c in (4, 8, 12, 16, 21, 25, 30, 35, 39):  # every quaternion's w (DEEPMIMIC_FACTS.md)
        expected[:, c:c + 4] = raw[:, c:c + 4] / np.linalg.norm(raw[:, c:c + 4], axis=1)[:, None]
    assert np.array_equal(clip.frames, expected)


def test_write_clip_reads_back(tmp_path, gen, gen_model):
    frames = qpos_to_frames(gen_model, gen.qpos[:5], gen.frame_dt)
    path = tmp_path / "sub" / "c.txt"
    write_clip(path, frames, loop="wrap")
    clip = load_clip(path)
    assert clip.loop == "wrap"
    np.testing.assert_allclose(clip.frames[:, :4], frames[:, :4], atol=1e-11)
    assert [p.name for p in path.parent.iterdir()] == ["c.txt"]  # no temporary left


# ----------------------------------------------------------------- qvel

def test_loader_qvel_is_tangent_space_fd(gen, gen_model, gen_clip):
    """Through the file, the loader's qvel equals the finite difference of
    the generator's own qpos (file rounding is 1e-12 relative, /dt ~ 1e-10)."""
    qpos = frames_to_qpos(gen_model, load_clip(gen_clip).frames)
    qvel = finite_difference_qvel(gen_model, qpos, gen.frame_dt)
    direct = finite_difference_qvel(gen_model, gen.qpos, gen.frame_dt)
    np.testing.assert_allclose(qvel, direct, atol=1e-8)


@pytest.fixture(scope="module")
def airborne():
    """A simulator trajectory on which finite differences can be judged.

    The generated clips hold each action for a whole frame, so the
    acceleration jumps at every frame (a central difference straddling a jump
    da has an O(dt * da) error, not O(dt^2)), and contacts and the knee and
    elbow range limits add impacts on a 5 ms time scale. To measure the
    truncation error itself we simulate the generator's actions linearly
    interpolated to the physics rate (no jumps), 2 m above the floor (no
    contact), knees and elbows starting mid-range, noise 0.05: a 0.5 s
    flight, recorded at every 600 Hz physics step.
    """
    g = generate_trajectory(seconds=1.0, frame_dt=1 / 30, seed=0, noise=0.05)
    model = load_model(g.physics_dt)
    dt = g.physics_dt
    nstep = 300
    t_frames = np.arange(len(g.actions)) * g.frame_dt
    t_steps = np.arange(nstep) * dt
    actions = np.stack([np.interp(t_steps, t_frames, g.actions[:, i]) for i in range(model.nu)], axis=1)
    q0 = standing_qpos(model)
    q0[2] += 2.0
    lay = layout(model)
    for name, adr in zip(JOINTS, lay.qpos_adr):
        if name in HINGE_JOINTS:
            q0[adr] = -1.5 if name.endswith("knee") else 1.5
    out = simulate_frames(model, make_state(model, q0, np.zeros(model.nv)), actions, 1)
    assert out.diverged_frame[0] == -1
    _, qpos, qvel = split_state(model, out.states[0])
    # Steps with any active constraint (contact or joint limit).
    data = mujoco.MjData(model)
    constrained = np.zeros(nstep + 1, bool)
    for n in range(nstep + 1):
        data.qpos[:], data.qvel[:] = qpos[n], qvel[n]
        mujoco.mj_forward(model, data)
        constrained[n] = data.nefc > 0
    return model, dt, qpos, qvel, constrained


def _loader_qvel(tmp_path, model, qpos, dt, name):
    """qpos -> DeepMimic clip file -> load_clip -> qpos -> finite-difference qvel."""
    path = tmp_path / f"{name}.txt"
    write_clip(path, qpos_to_frames(model, qpos, dt))
    return finite_difference_qvel(model, frames_to_qpos(model, load_clip(path).frames), dt)


def test_fd_qvel_error_is_second_order(tmp_path, airborne):
    """Loader qvel vs the simulator's velocity at 1/30 s and 1/120 s sampling
    of the same trajectory.

    Tolerance, and why: a central difference over +-h has error
    h^2/6 * q''' (+ O(h^4)); we estimate q''' from the data's own third
    differences (D3 = q[t+1] - 3q[t] + 3q[t-1] - q[t-2] ~ h^3 q''') and require
    |error| <= 3 * max|D3| / (6 h) per frame at 1/120 s (3x for the jerk
    varying inside the window). Going from 1/30 s to 1/120 s must shrink the
    interior error by ~16x (second order; accepted 10-24x). The end frames
    are one-sided, O(h): their error shrinks by ~4x (accepted 2-8x).

    Reference velocity: MuJoCo's semi-implicit step sets q[n+1] = q[n] +
    dt v[n+1], so the position path has slope v[n] before node n and v[n+1]
    after it; its derivative at the node is (v[n] + v[n+1]) / 2 up to O(dt^2).
    Comparing against v[n] alone would add a constant a*dt/2 offset (the
    integrator's, 1/1200 s * |a|) that does not shrink with h.
    """
    model, dt, qpos, qvel, constrained = airborne
    v_node = 0.5 * (qvel[:-1] + qvel[1:])
    s30, s120 = 20, 5  # physics steps per sample
    idx30, idx120 = np.arange(0, len(qpos), s30), np.arange(0, len(qpos), s120)
    f30 = _loader_qvel(tmp_path, model, qpos[idx30], s30 * dt, "c30")
    f120 = _loader_qvel(tmp_path, model, qpos[idx120], s120 * dt, "c120")
    # Interior 1/30 s frames whose +-1/30 s window has no active constraint.
    clean = [k for k in range(1, len(idx30) - 1)
             if not constrained[idx30[k - 1]:idx30[k + 1] + 1].any()]
    assert len(clean) >= 5, clean
    steps = idx30[clean]
    e30 = np.linalg.norm(f30[clean] - v_node[steps], axis=1)
    e120 = np.linalg.norm(f120[steps // s120] - v_node[steps], axis=1)
    ratio = e30 / e120
    assert ((ratio > 10) & (ratio < 24)).all(), ratio
    # Absolute bound at 1/120 s from the data's third differences.
    h = s120 * dt
    q = qpos[idx120]
    u = np.zeros((len(q) - 1, model.nv))  # u[t]: mean velocity over t..t+1
    for t in range(len(q) - 1):
        mujoco.mj_differentiatePos(model, u[t], h, q[t], q[t + 1])
    for k in steps // s120:
        d3 = h * max(np.linalg.norm(u[k] - 2 * u[k - 1] + u[k - 2]),
                     np.linalg.norm(u[k + 1] - 2 * u[k] + u[k - 1]))
        err = np.linalg.norm(f120[k] - v_node[k * s120])
        assert err <= 3 * d3 / (6 * h), (k, err, d3 / (6 * h))
    # End frames: one-sided, first order.
    for end30, end120 in ((0, 0), (-1, -1)):
        n = idx30[end30]
        ratio_end = (np.linalg.norm(f30[end30] - v_node[min(n, len(v_node) - 1)])
                     / np.linalg.norm(f120[end120] - v_node[min(n, len(v_node) - 1)]))
        assert 2 < ratio_end < 8, (end30, ratio_end)


# ----------------------------------------------------------------- cycles, ground

@pytest.fixture(scope="module")
def walk_qpos(model):
    return frames_to_qpos(model, load_clip(pybullet_clip_path("walk")).frames)


def test_repeat_cycles_count_and_continuity(walk_qpos):
    T = walk_qpos.shape[0]
    out = repeat_cycles(walk_qpos, 3)
    assert out.shape == ((T - 1) * 3 + 1, walk_qpos.shape[1])
    np.testing.assert_array_equal(out[:T - 1], walk_qpos[:T - 1])  # cycle 0 is the clip itself
    for c in (1, 2):
        b = c * (T - 1)
        # The root continues from where the previous cycle ended ...
        np.testing.assert_allclose(out[b, :2], _end_of_cycle(walk_qpos, c), atol=1e-12)
        # ... the next cycle's steps are the clip's steps turned by c * heading change ...
        np.testing.assert_allclose(out[b + 1, :2] - out[b, :2],
                                   Rotation.from_euler("z", c * _dyaw(walk_qpos)).as_matrix()[:2, :2]
                                   @ (walk_qpos[1, :2] - walk_qpos[0, :2]), atol=1e-12)
        # ... and joints and height repeat exactly.
        np.testing.assert_array_equal(out[b:b + T - 1, 7:], walk_qpos[:T - 1, 7:])
        np.testing.assert_array_equal(out[b:b + T - 1, 2], walk_qpos[:T - 1, 2])
    np.testing.assert_allclose(out[T - 1, :2], walk_qpos[-1, :2], atol=1e-12)
    # Walking forward: the second cycle ends about twice as far as the first.
    d1 = np.linalg.norm(out[T - 1, :2] - out[0, :2])
    d2 = np.linalg.norm(out[2 * (T - 1), :2] - out[0, :2])
    assert d1 > 0.5 and abs(d2 / d1 - 2) < 0.05
    assert np.array_equal(repeat_cycles(walk_qpos, 1), walk_qpos)
    with pytest.raises(ValueError, match="cycles"):
        repeat_cycles(walk_qpos, 0)


def _end_of_cycle(qpos, c):
    """Root xy after c cycles: apply c times the planar move p -> R(dyaw)(p - p0) + p_last."""
    R = Rotation.from_euler("z", _dyaw(qpos)).as_matrix()[:2, :2]
    p = qpos[0, :2]
    for _ in range(c):
        p = R @ (p - qpos[0, :2]) + qpos[-1, :2]
    return p


def _dyaw(qpos):
    fwd = Rotation.from_quat(qpos[[0, -1], 3:7], scalar_first=True).apply([1.0, 0, 0])
    yaw = np.arctan2(fwd[:, 1], fwd[:, 0])
    return yaw[1] - yaw[0]


def test_repeat_cycles_carries_heading(model):
    """A clip that turns 90 degrees left while moving 1 m forward: its second
    cycle starts facing +y and moves 1 m along +y."""
    lay = layout(model)
    q = np.tile(standing_qpos(model), (3, 1))
    q[:, 0] = [0.0, 0.5, 1.0]
    q[:, 3:7] = Rotation.from_euler("z", np.array([[0.0], [np.pi / 4], [np.pi / 2]])).as_quat(scalar_first=True)
    out = repeat_cycles(q, 2)
    np.testing.assert_allclose(out[:, :2], [[0, 0], [0.5, 0], [1, 0], [1, 0.5], [1, 1]], atol=1e-12)
    yaw = Rotation.from_quat(out[:, 3:7], scalar_first=True).as_euler("zyx")[:, 0]
    np.testing.assert_allclose(yaw, [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4, np.pi], atol=1e-12)
    assert out.shape[1] == model.nq and lay.qpos_adr[0] == 7


def test_ground_shift_logic():
    # Median below the floor: lift by it (frame 0 ends above the floor).
    assert ground_shift(np.array([-0.005, -0.02, -0.01, -0.01, 0.0])) == pytest.approx(0.01)
    # Frame 0 deeper than the median: lift so that frame 0 touches z = 0.
    assert ground_shift(np.array([-0.03, -0.01, -0.01, 0.0])) == pytest.approx(0.03)
    # Clip floating 2 cm above the floor: lowered by 2 cm.
    assert ground_shift(np.array([0.02, 0.02, 0.02])) == pytest.approx(-0.02)


def test_build_reference_shift_and_qvel(tmp_path, model):
    """A standing clip sunk 3 cm into the floor is lifted back exactly; the
    reference qvel is the finite difference of its qpos."""
    q = np.tile(standing_qpos(model), (4, 1))
    q[:, 0] = np.arange(4) * 0.01  # moving forward at 0.3 m/s
    q[:, 2] -= 0.03
    path = tmp_path / "sunk.txt"
    write_clip(path, qpos_to_frames(model, q, 1 / 30))
    ref, diag = build_reference(load_clip(path))
    assert ref.ground_shift_m == pytest.approx(0.03, abs=1e-9)
    np.testing.assert_allclose(diag["lowest_point_corrected_m"], 0.0, atol=1e-9)
    np.testing.assert_allclose(ref.qpos[:, 2], q[:, 2] + 0.03, atol=1e-9)
    np.testing.assert_allclose(ref.qvel[:, 0], 0.3, atol=1e-8)
    np.testing.assert_allclose(ref.qvel[:, 1:], 0.0, atol=1e-8)
    assert ref.substeps == 20 and ref.physics_dt == pytest.approx(1 / 600)
    ref0, _ = build_reference(load_clip(path), ground_correction=False)
    assert ref0.ground_shift_m == 0.0
    np.testing.assert_allclose(ref0.qpos[:, 2], q[:, 2], atol=1e-9)
    with pytest.raises(ClipError, match="Loop: none"):
        build_reference(load_clip(path), cycles=2)
