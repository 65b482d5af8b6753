"""The MJCF humanoid against DEEPMIMIC_FACTS.md, its actuators, and the
geometry helpers (lowest points, standing pose)."""

from __future__ import annotations

import itertools

import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mocap_refine.generate import standing_qpos
from mocap_refine.model import (
    HINGE_JOINTS, JOINTS, TORQUE_LIMIT_NM, layout, load_model, substeps_for,
)
from mocap_refine.reference import geom_lowest_points, lowest_points

# From DEEPMIMIC_FACTS.md.
BODY_MASS_KG = {"root": 6.0, "chest": 14.0, "neck": 2.0, "right_hip": 4.5, "right_knee": 3.0,
                "right_ankle": 1.0, "right_shoulder": 1.5, "right_elbow": 1.0, "right_wrist": 0.5}


def test_dimensions(model):
    assert (model.nq, model.nv, model.nu) == (43, 34, 28)
    assert model.njnt == 13  # free root + 8 ball + 4 hinges
    types = {mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j): int(model.jnt_type[j])
             for j in range(model.njnt)}
    assert types["root"] == mujoco.mjtJoint.mjJNT_FREE
    for name in JOINTS:
        want = mujoco.mjtJoint.mjJNT_HINGE if name in HINGE_JOINTS else mujoco.mjtJoint.mjJNT_BALL
        assert types[name] == want, name


def test_masses(model):
    assert model.body_mass.sum() == pytest.approx(45.0, abs=1e-9)
    for name, mass in BODY_MASS_KG.items():
        for side_name in {name, name.replace("right_", "left_")}:
            bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, side_name)
            assert model.body_mass[bid] == pytest.approx(mass, abs=1e-9), side_name


def test_timestep_and_solver(model):
    assert model.opt.timestep == pytest.approx(1 / 600)
    assert load_model(0.002).opt.timestep == 0.002
    assert model.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    # Warm start off: the next state depends on (state, ctrl) only.
    assert model.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_WARMSTART


def test_layout_is_consistent(model):
    lay = layout(model)
    assert len(lay.actuator_names) == 28 and len(set(lay.actuator_names)) == 28
    assert len(set(lay.actuator_dof)) == 28  # every actuated DoF driven by one motor
    assert set(lay.actuator_dof) == set(range(6, 34))  # all but the free root
    for a, name in enumerate(lay.actuator_names):
        joint = name if name in HINGE_JOINTS else name.rsplit("_", 1)[0]
        assert lay.torque_limit[a] == TORQUE_LIMIT_NM[joint]
        assert np.abs(model.actuator_gear[a]).max() == TORQUE_LIMIT_NM[joint]
        np.testing.assert_array_equal(model.actuator_ctrlrange[a], [-1, 1])
    assert lay.kp[lay.actuator_names.index("chest_x")] == 1000.0
    assert lay.kd[lay.actuator_names.index("left_elbow")] == 30.0


@pytest.mark.parametrize("motor, ctrl", [("right_hip_y", 0.5), ("left_shoulder_z", -0.8),
                                         ("left_knee", -0.4), ("neck_x", 1.0)])
def test_actuator_torque_on_its_dof(model, motor, ctrl):
    """ctrl * torque limit appears as generalised force on exactly the DoF
    the layout says, and nowhere else (ball motors act about the joint-local
    axis named in the motor)."""
    lay = layout(model)
    a = lay.actuator_names.index(motor)
    joint = motor if motor in HINGE_JOINTS else motor.rsplit("_", 1)[0]
    axis = 0 if motor in HINGE_JOINTS else "xyz".index(motor[-1])
    jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint)
    assert lay.actuator_dof[a] == model.jnt_dofadr[jid] + axis
    data = mujoco.MjData(model)
    data.qpos[:] = standing_qpos(model)
    data.ctrl[a] = ctrl
    mujoco.mj_forward(model, data)
    expected = np.zeros(model.nv)
    expected[model.jnt_dofadr[jid] + axis] = ctrl * TORQUE_LIMIT_NM[joint]
    np.testing.assert_allclose(data.qfrc_actuator, expected, atol=1e-9)


def test_hinge_axes_bend_the_right_way(model):
    """Knees bend backwards for negative angles (range -3.14..0), elbows
    forwards for positive ones (range 0..3.14), as in DeepMimic."""
    data = mujoco.MjData(model)
    lay = layout(model)
    for joint, angle, child, sign in (("right_knee", -1.0, "right_ankle", -1),
                                      ("right_elbow", 1.0, "right_wrist", +1)):
        data.qpos[:] = model.qpos0
        data.qpos[lay.qpos_adr[JOINTS.index(joint)]] = angle
        mujoco.mj_kinematics(model, data)
        jb = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, joint)
        cb = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, child)
        assert sign * (data.xpos[cb, 0] - data.xpos[jb, 0]) > 0.2, joint
        jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint)
        lo, hi = model.jnt_range[jid]
        assert (lo, hi) == ((-3.14, 0.0) if "knee" in joint else (0.0, 3.14))


def test_substeps_for():
    assert substeps_for(1 / 30, 600) == (20, pytest.approx(1 / 600))
    n, dt = substeps_for(0.0625, 600)  # backflip: 37.5 -> 38 steps of 1.645 ms
    assert n == 38 and n * dt == pytest.approx(0.0625)
    assert substeps_for(1 / 30, 20) == (1, pytest.approx(1 / 30))  # 0.67 steps round to 1
    # No whole step per frame, or no rate at all: refused, saying the lowest rate.
    with pytest.raises(ValueError, match=r"physics rate 600 Hz gives no whole physics step per 0.0001 s frame.*"
                                         r"at least 5000 Hz"):
        substeps_for(0.0001, 600)
    for bad in (0, -600, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="is not a positive number"):
            substeps_for(1 / 30, bad)


# ----------------------------------------------------------------- geometry

def _brute_force_lowest(model, data, geoms):
    """Lowest z by sampling each geom's surface: box corners, capsule end
    spheres, spheres; independent of the closed forms in lowest_points."""
    low = np.inf
    for g in geoms:
        c, R, size = data.geom_xpos[g], data.geom_xmat[g].reshape(3, 3), model.geom_size[g]
        t = model.geom_type[g]
        if t == mujoco.mjtGeom.mjGEOM_BOX:
            corners = [c + R @ (np.array(s) * size) for s in itertools.product((-1, 1), repeat=3)]
            low = min(low, min(p[2] for p in corners))
        elif t == mujoco.mjtGeom.mjGEOM_CAPSULE:
            ends = [c + R @ np.array([0, 0, s * size[1]]) for s in (-1, 1)]
            low = min(low, min(p[2] for p in ends) - size[0])
        elif t == mujoco.mjtGeom.mjGEOM_SPHERE:
            low = min(low, c[2] - size[0])
    return low


def _random_poses(model, rng, n):
    """(n, nq) poses: root anywhere in the unit cube, random joint rotations."""
    lay = layout(model)
    qpos = np.tile(model.qpos0, (n, 1))
    for q in qpos:
        q[:3] = rng.uniform(-1, 1, 3)
        q[3:7] = Rotation.random(random_state=rng).as_quat(scalar_first=True)
        for name, adr in zip(JOINTS, lay.qpos_adr):
            if name in HINGE_JOINTS:
                q[adr] = rng.uniform(-1, 1)
            else:
                q[adr:adr + 4] = Rotation.random(random_state=rng).as_quat(scalar_first=True)
    return qpos


def test_lowest_points_random_poses(model):
    rng = np.random.default_rng(3)
    data = mujoco.MjData(model)
    body_geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] != 0]
    feet = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in ("right_foot", "left_foot")]
    qpos = _random_poses(model, rng, 6)
    got = lowest_points(model, qpos)
    got_feet = lowest_points(model, qpos, ("right_foot", "left_foot"))
    for t, q in enumerate(qpos):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        assert got[t] == pytest.approx(_brute_force_lowest(model, data, body_geoms), abs=1e-12)
        assert got_feet[t] == pytest.approx(_brute_force_lowest(model, data, feet), abs=1e-12)


def test_geom_lowest_points_per_geom(model):
    """The vectorised per-geom lowest points: each column is that geom's
    lowest_points, the row minimum the whole body's; names or ids."""
    rng = np.random.default_rng(5)
    qpos = _random_poses(model, rng, 4)
    got = geom_lowest_points(model, qpos)
    body_geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] != 0]
    assert got.shape == (4, len(body_geoms))
    for k, g in enumerate(body_geoms):
        np.testing.assert_allclose(got[:, k], lowest_points(model, qpos, [mujoco.mj_id2name(
            model, mujoco.mjtObj.mjOBJ_GEOM, g)]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.min(axis=1), lowest_points(model, qpos), rtol=0, atol=1e-12)
    feet = geom_lowest_points(model, qpos, ("right_foot", "left_foot"))
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in ("right_foot", "left_foot")]
    np.testing.assert_array_equal(feet, geom_lowest_points(model, qpos, ids))
    with pytest.raises(ValueError, match="unsupported geom type"):
        geom_lowest_points(model, qpos, ["floor"])


def test_standing_pose(model):
    """Lowest point exactly on the floor, the feet are that lowest point,
    upright (head over pelvis), knees and elbows slightly bent."""
    q = standing_qpos(model)
    assert lowest_points(model, q[None])[0] == pytest.approx(0.0, abs=1e-12)
    assert lowest_points(model, q[None], ("right_foot", "left_foot"))[0] == pytest.approx(0.0, abs=1e-12)
    data = mujoco.MjData(model)
    data.qpos[:] = q
    mujoco.mj_kinematics(model, data)
    lay = layout(model)
    head, pelvis = data.xpos[lay.body_ids["neck"]], data.xpos[lay.body_ids["root"]]
    assert head[2] - pelvis[2] > 0.4 and np.hypot(*(head - pelvis)[:2]) < 1e-9
    # Leg length: 0.42 + 0.41 m, slightly bent, plus foot: pelvis at ~0.9 m.
    assert 0.85 < q[2] < 0.95
    # Lifting the pose lifts the lowest point by the same amount.
    q2 = q.copy()
    q2[2] += 0.37
    assert lowest_points(model, q2[None])[0] == pytest.approx(0.37, abs=1e-12)
