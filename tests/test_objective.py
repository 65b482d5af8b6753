"""The shared tracking objective: per-DoF weights of the root."""

from __future__ import annotations

import numpy as np
import pytest

from mocap_refine.model import load_model
from mocap_refine.objective import Weights, tracking_residual


def test_root_height_weight_adds_to_the_vertical_axis_only():
    model = load_model(1 / 600)
    q_ref = model.qpos0.copy()
    q = q_ref.copy()
    q[0] += 0.1   # 10 cm off horizontally
    q[2] -= 0.1   # 10 cm low
    v = np.zeros(model.nv)
    w = Weights(root_pos=10.0, root_height=90.0)
    r = tracking_residual(model, q, v, q_ref, v, w)
    assert r[0] == pytest.approx(np.sqrt(10.0) * 0.1)
    assert r[2] == pytest.approx(-np.sqrt(100.0) * 0.1)
    assert np.count_nonzero(r) == 2
    # Default: no extra height weight, both axes weighted alike.
    r0 = tracking_residual(model, q, v, q_ref, v, Weights(root_pos=10.0))
    assert abs(r0[2]) == pytest.approx(abs(r0[0]))
