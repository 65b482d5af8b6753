"""MuJoCo's warnings go to the job's log, never to MUJOCO_LOG.TXT."""

from __future__ import annotations

import logging

import numpy as np

from mocap_refine.logs import route_mujoco_warnings
from mocap_refine.model import load_model
from mocap_refine.sim import DataPool, make_state, simulate_frames


def test_warnings_from_rollout_threads_reach_logging(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    route_mujoco_warnings()
    model = load_model()
    start = make_state(model, model.qpos0, np.full(model.nv, 200.0))
    with caplog.at_level(logging.WARNING, logger="mujoco"):
        out = simulate_frames(model, np.repeat(start[None], 4, 0), np.ones((4, 5, model.nu)), 20,
                              DataPool(model, 2))
    assert (out.diverged_frame >= 0).all()
    assert any("Nan, Inf or huge value" in r.getMessage() for r in caplog.records if r.name == "mujoco")
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
