"""Reference building: resampling of clips with a dropped frame."""

import json

import numpy as np

from mocap_refine.clip import load_clip, qpos_to_frames
from mocap_refine.generate import generate_trajectory
from mocap_refine.metrics import joint_errors
from mocap_refine.model import load_model
from mocap_refine.reference import build_reference, uniform_frame_dt


def test_dropped_frame_is_resampled(tmp_path):
    """A clip with frame 5 removed (frame 4 lasting two frames' time, as in
    pybullet's roll) is resampled onto the regular step: the frame count comes
    back and the missing pose is interpolated close to the true one."""
    gen = generate_trajectory(seconds=0.3, frame_dt=1 / 60, seed=2)
    model = load_model(gen.physics_dt)
    frames = qpos_to_frames(model, gen.qpos, gen.frame_dt)
    dropped = np.delete(frames, 5, axis=0)
    dropped[4, 0] = 2 * gen.frame_dt
    path = tmp_path / "dropped.txt"
    path.write_text(json.dumps({"Loop": "none", "Frames": dropped.tolist()}))
    clip = load_clip(path)
    dt, resample = uniform_frame_dt(clip)
    assert resample and abs(dt - gen.frame_dt) < 1e-12
    ref, diag = build_reference(clip, ground_correction=False)
    assert ref.n_frames == gen.qpos.shape[0]
    assert diag["summary"]["resampled"] and diag["summary"]["source_frames"] == gen.qpos.shape[0] - 1
    err = joint_errors(model, ref.qpos, gen.qpos).mean(axis=1)
    keep = np.arange(ref.n_frames) != 5
    assert err[keep].max() < 1e-6          # untouched frames: exact to file precision
    assert 0 < err[5] < 0.05               # the interpolated one is close
    np.testing.assert_allclose(ref.qpos[5, :3], 0.5 * (gen.qpos[4, :3] + gen.qpos[6, :3]), atol=1e-12)


def test_uniform_clip_is_not_resampled(tmp_path):
    gen = generate_trajectory(seconds=0.2, frame_dt=1 / 30, seed=2)
    model = load_model(gen.physics_dt)
    path = tmp_path / "u.txt"
    path.write_text(json.dumps({"Loop": "none", "Frames": qpos_to_frames(model, gen.qpos, gen.frame_dt).tolist()}))
    dt, resample = uniform_frame_dt(load_clip(path))
    assert not resample and abs(dt - gen.frame_dt) < 1e-12
