"""Floor clearance: a cost on the bodies the fall rule watches.

The fall rule's contact criterion flags a frame where a body other than the
feet touches the floor while the reference's same body is off it
(:func:`mocap_refine.metrics.reference_contact_near` false). Joint-angle
costs barely see that: on crawl a hand 9 cm below the reference, on the
floor, came from joint errors of 0.02 rad. This residual is the criterion's
smooth side, per frame and watched body b,

    sqrt(w) * min(0, h_b - min(h_ref_b, c))   where the reference's b is off the floor,
    0                                          where it is near it (may rest there),

with h the lowest point of the body's geom (m) and c a height, by default
the rule's reference margin (REFERENCE_CONTACT_MARGIN_M, 0.10 m): a body costs only while it is
lower than both the reference's and c, so a hand swinging 0.8 m up does not
pull on the pose, and the cost grows as the body nears the floor where the
rule would flag it. The lowest point of a sphere is
its centre less the radius; of a capsule, its lower end-cap centre less the
radius, so its Jacobian is the z row of that point's Jacobian (``mj_jac``).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from .metrics import REFERENCE_CONTACT_MARGIN_M, contact_bodies, reference_contact_near
from .reference import geom_lowest_points


def watched_geoms(model: mujoco.MjModel) -> np.ndarray:
    """Geom ids of :func:`contact_bodies`, one per watched body (B,)."""
    _, geoms = contact_bodies(model)
    if any(len(g) != 1 for g in geoms):
        raise ValueError("clearance: every watched body must hold exactly one geom")
    return np.array([int(g[0]) for g in geoms])


@dataclass(frozen=True)
class Clearance:
    """Target heights min(h_ref, c) (N, B) m, the mask off (N, B) of bodies
    the rule watches at each frame (reference off the floor), the geoms (B,)
    and the weight (1/m^2)."""
    target: np.ndarray
    off: np.ndarray
    geoms: np.ndarray
    weight: float

    @classmethod
    def build(cls, model: mujoco.MjModel, qpos_ref: np.ndarray, weight: float,
              height_m: float = REFERENCE_CONTACT_MARGIN_M):
        """None when weight is 0 (the term is off). height_m: c above."""
        if weight <= 0:
            return None
        geoms = watched_geoms(model)
        target = np.minimum(geom_lowest_points(model, qpos_ref, geoms), height_m)
        return cls(target, ~reference_contact_near(model, qpos_ref), geoms, float(weight))

    def residual(self, model: mujoco.MjModel, qpos: np.ndarray, rows: slice) -> np.ndarray:
        """qpos (..., W, nq) at reference frames `rows` -> (..., W, B)."""
        lead = qpos.shape[:-1]
        h = geom_lowest_points(model, qpos.reshape(-1, model.nq), self.geoms).reshape(lead + (-1,))
        gap = np.minimum(0.0, h - self.target[rows]) * self.off[rows]
        return np.sqrt(self.weight) * gap

    def jacobian(self, model: mujoco.MjModel, qpos: np.ndarray, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        """qpos (W, nq) -> residual (W, B) and its Jacobian (W, B, 2nv) with
        respect to the state tangent (dq, dv); rows where the hinge is
        inactive are zero."""
        W, nv = qpos.shape[0], model.nv
        r = self.residual(model, qpos, rows)
        J = np.zeros((W, len(self.geoms), 2 * nv))
        data = mujoco.MjData(model)
        jacp = np.empty((3, nv))
        for t in range(W):
            active = np.nonzero(r[t] < 0)[0]
            if not active.size:
                continue
            data.qpos[:] = qpos[t]
            mujoco.mj_kinematics(model, data)
            mujoco.mj_comPos(model, data)
            for b in active:
                g = int(self.geoms[b])
                point = data.geom_xpos[g].copy()
                if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_CAPSULE:
                    axis = data.geom_xmat[g].reshape(3, 3)[:, 2]
                    point -= np.sign(axis[2]) * model.geom_size[g, 1] * axis
                mujoco.mj_jac(model, data, jacp, None, point, int(model.geom_bodyid[g]))
                J[t, b, :nv] = np.sqrt(self.weight) * jacp[2]
        return r, J
