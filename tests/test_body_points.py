"""body_points: the body-point tracking term and its state Jacobian."""

from __future__ import annotations

import mujoco
import numpy as np

from mocap_refine.body_points import (PointWeights, point_geoms, point_kinematics, point_residual,
                                      point_residual_jacobian)


def test_points_are_the_body_geom_centres(gen, gen_model):
    pos, vel = point_kinematics(gen_model, gen.qpos[:3], gen.qvel[:3])
    data = mujoco.MjData(gen_model)
    data.qpos[:] = gen.qpos[2]
    mujoco.mj_forward(gen_model, data)
    assert pos.shape == (3, 15, 3) and vel.shape == (3, 15, 3)
    np.testing.assert_allclose(pos[2], data.geom_xpos[point_geoms(gen_model)], atol=1e-12)
    # Velocity of a point = its Jacobian times qvel: the finite difference of
    # positions along the velocity agrees.
    q2 = gen.qpos[2].copy()
    mujoco.mj_integratePos(gen_model, q2, gen.qvel[2], 1e-7)
    pos2, _ = point_kinematics(gen_model, q2[None], gen.qvel[2:3])
    np.testing.assert_allclose((pos2[0] - pos[2]) / 1e-7, vel[2], atol=1e-4)


def test_residual_jacobian_matches_finite_differences(gen, gen_model):
    """Position rows exactly (to FD accuracy); velocity rows w.r.t. qvel exactly.
    The velocity rows' dependence on qpos is left out (Gauss-Newton), so it is not compared."""
    w = PointWeights(100.0, 30.0, 0.1)
    q, v = gen.qpos[10], gen.qvel[10]
    ref_pos, ref_vel = point_kinematics(gen_model, gen.qpos[12:13], gen.qvel[12:13])
    pos, vel, J = point_kinematics(gen_model, q[None], v[None], jacobians=True)
    r0 = point_residual(pos, vel, ref_pos, ref_vel, w)[0]
    Jr = point_residual_jacobian(J, w)[0]
    nv, P = gen_model.nv, len(point_geoms(gen_model))
    n_pos = 3 + 3 * P
    eps = 1e-6
    for i in range(nv):
        e = np.zeros(nv)
        e[i] = eps
        qp = q.copy()
        mujoco.mj_integratePos(gen_model, qp, e, 1.0)
        p2, v2 = point_kinematics(gen_model, qp[None], v[None])
        fd = (point_residual(p2, v2, ref_pos, ref_vel, w)[0] - r0) / eps
        np.testing.assert_allclose(fd[:n_pos], Jr[:n_pos, i], atol=1e-4)
        p3, v3 = point_kinematics(gen_model, q[None], (v + e)[None])
        fd = (point_residual(p3, v3, ref_pos, ref_vel, w)[0] - r0) / eps
        np.testing.assert_allclose(fd, Jr[:, nv + i], atol=1e-4)


def test_zero_at_the_reference_and_inactive_by_default(gen, gen_model):
    pos, vel = point_kinematics(gen_model, gen.qpos[:4], gen.qvel[:4])
    assert not np.any(point_residual(pos, vel, pos, vel, PointWeights(1.0, 1.0, 1.0)))
    assert not PointWeights().active and PointWeights(velocity=0.1).active
