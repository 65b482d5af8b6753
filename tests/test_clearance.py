"""clearance: the floor-clearance term (the fall rule's contact criterion as a cost)."""

from __future__ import annotations

import mujoco
import numpy as np

from mocap_refine.clearance import Clearance, watched_geoms
from mocap_refine.metrics import REFERENCE_CONTACT_MARGIN_M, contact_bodies, contact_falls
from mocap_refine.reference import geom_lowest_points


def _lowered(gen, dz):
    """The generated clip with every frame moved dz (m) vertically."""
    q = gen.qpos.copy()
    q[:, 2] += dz
    return q


def test_zero_where_as_high_as_the_reference_or_it_is_near_the_floor(gen, gen_model):
    rows = slice(0, gen.qpos.shape[0])
    c = Clearance.build(gen_model, gen.qpos, 50.0, height_m=10.0)  # below the reference's anywhere
    assert not c.residual(gen_model, gen.qpos, rows).any()
    assert not c.residual(gen_model, _lowered(gen, +0.2), rows).any()  # higher costs nothing
    r = c.residual(gen_model, _lowered(gen, -0.05), rows)
    # Lowered 5 cm: exactly the watched bodies whose reference is off the floor
    # cost sqrt(w) * 0.05 each; the others (and the feet) nothing.
    np.testing.assert_allclose(r[c.off], -np.sqrt(50.0) * 0.05, atol=1e-12)
    assert not r[~c.off].any()
    assert c.off.any() and (~c.off).any()
    assert Clearance.build(gen_model, gen.qpos, 0.0) is None
    # The default height (the rule's reference margin, 0.10 m): a body costs
    # only for the part of its drop below 0.10 m.
    capped = Clearance.build(gen_model, gen.qpos, 50.0)
    h = geom_lowest_points(gen_model, _lowered(gen, -0.05), watched_geoms(gen_model))
    expected = np.sqrt(50.0) * np.minimum(0.0, h - np.minimum(h + 0.05, REFERENCE_CONTACT_MARGIN_M)) * c.off
    np.testing.assert_allclose(capped.residual(gen_model, _lowered(gen, -0.05), rows), expected, atol=1e-12)
    assert (expected[c.off] == 0).any() and (expected[c.off] < 0).any()


def test_heights_are_the_fall_rules(gen, gen_model):
    """The bodies and lowest points the fall rule uses: one geom per watched
    body, and a lowered replay the rule flags has a nonzero residual there."""
    bodies, geoms = contact_bodies(gen_model)
    assert [int(gen_model.geom_bodyid[g]) for g in watched_geoms(gen_model)] == list(bodies)
    c = Clearance.build(gen_model, gen.qpos, 1.0, height_m=10.0)
    np.testing.assert_array_equal(c.target, geom_lowest_points(gen_model, gen.qpos, watched_geoms(gen_model)))
    low = _lowered(gen, -0.3)
    flagged = contact_falls(gen_model, low, gen.qpos)
    r = c.residual(gen_model, low, slice(0, low.shape[0]))
    assert flagged.any() and (r[flagged] < 0).any(axis=1).all()


def test_jacobian_matches_finite_differences(gen, gen_model):
    """Spheres and capsules (the lower end cap), with the rows the hinge
    leaves inactive zero; velocities do not enter."""
    c = Clearance.build(gen_model, gen.qpos, 30.0, height_m=10.0)
    q = _lowered(gen, -0.04)[8:14]
    rows = slice(8, 14)
    rng = np.random.default_rng(0)
    q = q.copy()
    for t in range(q.shape[0]):  # tilt the bodies so capsules are not level
        mujoco.mj_integratePos(gen_model, q[t], 0.05 * rng.standard_normal(gen_model.nv), 1.0)
    r, J = c.jacobian(gen_model, q, rows)
    assert (r < 0).sum() >= 5
    types = gen_model.geom_type[c.geoms]
    assert (types[(r < 0).any(axis=0)] == mujoco.mjtGeom.mjGEOM_CAPSULE).any()
    assert not J[:, :, gen_model.nv:].any()
    eps = 1e-7
    for i in range(gen_model.nv):
        qp = q.copy()
        for t in range(q.shape[0]):
            e = np.zeros(gen_model.nv)
            e[i] = eps
            mujoco.mj_integratePos(gen_model, qp[t], e, 1.0)
        fd = (c.residual(gen_model, qp, rows) - r) / eps
        np.testing.assert_allclose(fd, J[:, :, i], atol=1e-5)
