"""Clip variants (mocap_refine.variants) against known answers: mirroring is
an involution and is the reflection of the original body by body in the
model; resampling reproduces known smooth curves and is the identity at the
clip's own rate; written variants load and build references with the
expected physics substeps."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mocap_refine.clip import DEEPMIMIC_CLIPS, frames_to_qpos, load_clip
from mocap_refine.model import JOINTS
from mocap_refine.pipeline import pybullet_clip_path
from mocap_refine.reference import build_reference, joint_limit_violations
from mocap_refine.variants import mirror_frames, resample_frames, write_variants

# Frame columns from DEEPMIMIC_FACTS.md (independent of the package's table).
ROOT_POS, ROOT_Q = slice(1, 4), slice(4, 8)
RIGHT_HIP_Q, LEFT_HIP_Q = slice(16, 20), slice(30, 34)
RIGHT_KNEE, LEFT_KNEE = 20, 34
RIGHT_SHOULDER_Q = slice(25, 29)
QUAT_STARTS = (4, 8, 12, 16, 21, 25, 30, 35, 39)
# MuJoCo is Z-up with DeepMimic's +z (the character's right) along -y, so the
# sagittal mirror is y -> -y there.
S = np.diag([1.0, -1.0, 1.0])


def identity_frames(n: int, dt: float = 1 / 30) -> np.ndarray:
    fr = np.zeros((n, 44))
    fr[:, 0] = dt
    fr[:, 2] = 0.9
    fr[:, list(QUAT_STARTS)] = 1.0
    return fr


def random_frames(n: int, seed: int = 0) -> np.ndarray:
    """Frames with every quaternion a random rotation and random hinge angles."""
    rng = np.random.default_rng(seed)
    fr = identity_frames(n)
    fr[:, ROOT_POS] = rng.normal(size=(n, 3))
    for c in QUAT_STARTS:
        fr[:, c:c + 4] = Rotation.random(n, random_state=rng).as_quat(scalar_first=True)
    fr[:, [20, 34]] = rng.uniform(-3, 0, size=(n, 2))
    fr[:, [29, 43]] = rng.uniform(0, 3, size=(n, 2))
    return fr


def library(name: str) -> np.ndarray:
    return load_clip(pybullet_clip_path(name)).frames


def quat_rows_equal(q1, q2, atol):
    d = np.minimum(np.abs(q1 - q2).max(axis=-1), np.abs(q1 + q2).max(axis=-1))
    return bool((d <= atol).all())


# ----------------------------------------------------------------- mirror

def test_mirror_twice_is_identity():
    for frames in (random_frames(50), library("dance_a")):
        assert np.array_equal(mirror_frames(mirror_frames(frames)), frames)


def test_mirror_known_pose():
    """A yaw to the left becomes one to the right, a right hip flexion (about
    local z) the same left hip flexion, a right knee bend the left knee's,
    and the root's offset to the right one to the left."""
    fr = identity_frames(2)
    fr[:, ROOT_POS] = [0.1, 0.9, 0.3]
    fr[:, ROOT_Q] = Rotation.from_euler("y", 0.4).as_quat(scalar_first=True)
    fr[:, RIGHT_HIP_Q] = Rotation.from_euler("z", 0.8).as_quat(scalar_first=True)
    fr[:, RIGHT_KNEE] = -1.1
    m = mirror_frames(fr)
    np.testing.assert_array_equal(m[:, ROOT_POS], [[0.1, 0.9, -0.3]] * 2)
    assert quat_rows_equal(m[:, ROOT_Q], Rotation.from_euler("y", -0.4).as_quat(scalar_first=True), 1e-15)
    assert quat_rows_equal(m[:, LEFT_HIP_Q], fr[:, RIGHT_HIP_Q], 0)
    assert quat_rows_equal(m[:, RIGHT_HIP_Q], [1, 0, 0, 0], 0)
    assert (m[:, LEFT_KNEE] == -1.1).all() and (m[:, RIGHT_KNEE] == 0).all()


@pytest.mark.parametrize("source", ["random", "dance_a"])
def test_mirror_is_reflection_body_by_body(model, source):
    """Forward kinematics of the mirrored pose = the original's body
    positions and orientations reflected (y -> -y in MuJoCo), left and right
    bodies swapped."""
    frames = random_frames(40) if source == "random" else library(source)
    names = [model.body(b).name for b in range(model.nbody)]
    twin = [names.index(n.replace("right_", "@").replace("left_", "right_").replace("@", "left_"))
            for n in names]
    assert twin != list(range(model.nbody))
    data = mujoco.MjData(model)

    def fk(qpos):
        data.qpos[:] = qpos
        mujoco.mj_kinematics(model, data)
        return data.xpos.copy(), data.xmat.reshape(-1, 3, 3).copy()

    for qa, qb in zip(frames_to_qpos(model, frames), frames_to_qpos(model, mirror_frames(frames))):
        xa, ra = fk(qa)
        xb, rb = fk(qb)
        np.testing.assert_allclose(xb[twin], xa @ S, atol=1e-12)
        np.testing.assert_allclose(rb[twin], S @ ra @ S, atol=1e-12)


def test_mirror_swaps_joint_limit_violations():
    """Every library clip's mirror exceeds the (mirror-image) joint limits
    exactly where the original does, on the twin joint: a clip inside its
    limits stays inside."""
    twin = [JOINTS.index(n.replace("right_", "@").replace("left_", "right_").replace("@", "left_"))
            for n in JOINTS]
    for name in DEEPMIMIC_CLIPS:
        frames = library(name)
        np.testing.assert_allclose(joint_limit_violations(mirror_frames(frames)),
                                   joint_limit_violations(frames)[:, twin], atol=1e-12, err_msg=name)


# ----------------------------------------------------------------- resample

AXIS = np.array([1.0, 2.0, -1.0]) / np.sqrt(6.0)
YAW_RATE, SHOULDER_RATE = 2.5, 3.0  # rad/s


def curve(t: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Known smooth motion at times t: root position sin/cos, root yawing
    and the right shoulder turning about a fixed axis at constant angular
    velocity (slerp reproduces these exactly), knee angle a sine."""
    fr = identity_frames(len(t))
    fr[:, 0] = dt
    fr[:, ROOT_POS] = np.stack([np.sin(t), 0.9 + 0.1 * np.cos(2 * t), 0.3 * t], axis=1)
    fr[:, ROOT_Q] = Rotation.from_rotvec(np.outer(YAW_RATE * t, [0, 1, 0])).as_quat(scalar_first=True)
    fr[:, RIGHT_SHOULDER_Q] = Rotation.from_rotvec(np.outer(SHOULDER_RATE * t, AXIS)).as_quat(scalar_first=True)
    fr[:, RIGHT_KNEE] = -0.5 - 0.4 * np.sin(3 * t)
    return fr


def uneven_clip(seed: int = 0) -> np.ndarray:
    """About 2 s of the curve at uneven durations (1/45 to 1/25 s), with
    quaternion signs flipped at random (q and -q are one rotation)."""
    rng = np.random.default_rng(seed)
    dt = rng.uniform(1 / 45, 1 / 25, size=64)
    t = np.concatenate([[0.0], np.cumsum(dt[:-1])])
    fr = curve(t, dt)
    for c in QUAT_STARTS:
        fr[rng.random(len(t)) < 0.5, c:c + 4] *= -1
    return fr


@pytest.mark.parametrize("hz", [15, 24, 120])
def test_resample_known_curve(hz):
    src = uneven_clip()
    span = src[:-1, 0].sum()
    out = resample_frames(src, hz)
    t = np.arange(len(out)) / hz
    assert t[-1] <= span < t[-1] + 1 / hz
    np.testing.assert_array_equal(out[:, 0], 1 / hz)
    want = curve(t, 1 / hz)
    # Linear interpolation of sin at steps <= 0.04 s: error <= h^2/8 max|f''| < 1e-3.
    np.testing.assert_allclose(out[:, ROOT_POS], want[:, ROOT_POS], atol=1e-3)
    np.testing.assert_allclose(out[:, RIGHT_KNEE], want[:, RIGHT_KNEE], atol=1e-3)
    # Constant angular velocity about a fixed axis: slerp is exact.
    for cols in (ROOT_Q, RIGHT_SHOULDER_Q):
        assert quat_rows_equal(out[:, cols], want[:, cols], 1e-12)
    for c in QUAT_STARTS:
        np.testing.assert_allclose(np.linalg.norm(out[:, c:c + 4], axis=1), 1.0, atol=1e-12)


def test_resample_own_rate_is_identity():
    t = np.arange(61) / 30
    src = curve(t, 1 / 30)
    np.testing.assert_allclose(resample_frames(src, 30), src, rtol=0, atol=1e-12)
    for name in ("walk", "dance_a", "spin"):
        frames = library(name)
        dt = frames[0, 0]
        out = resample_frames(frames, 1 / dt)
        assert out.shape == frames.shape, name
        # The source's last duration (unused, 0 in pybullet's files) becomes dt.
        np.testing.assert_allclose(out[:-1], frames[:-1], rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(out[-1, 1:], frames[-1, 1:], rtol=0, atol=1e-12, err_msg=name)


def test_resample_ends_on_whole_frames():
    """walk lasts 38 x 0.033332 s, 4e-5 short of 38/30 s: at 15 Hz it still
    has 19 new frames and the last one is the clip's last pose."""
    frames = library("walk")
    out = resample_frames(frames, 15)
    assert out.shape == (20, 44)
    np.testing.assert_allclose(out[-1, 1:], frames[-1, 1:], atol=1e-12)


# ----------------------------------------------------------------- files

def test_written_variants_load_and_build(tmp_path):
    names = write_variants(tmp_path, ["walk"], rates=(15, 120))
    assert names == ["walk_mirror", "walk_15hz", "walk_120hz"]
    walk = load_clip(pybullet_clip_path("walk"))
    expected_substeps = {"walk_mirror": 20, "walk_15hz": 40, "walk_120hz": 5}
    for name in names:
        clip = load_clip(tmp_path / f"{name}.txt")
        assert clip.loop == walk.loop == "wrap"
        ref, diag = build_reference(clip)
        assert ref.substeps == expected_substeps[name], name
        assert not diag["summary"]["resampled"], name
    mirrored = load_clip(tmp_path / "walk_mirror.txt").frames
    np.testing.assert_allclose(mirrored, mirror_frames(walk.frames), rtol=1e-11, atol=1e-12)
