"""Reference building: resampling of clips with dropped, doubled or uneven frames."""

import json
import logging

import numpy as np
import pytest

from mocap_refine.clip import frames_to_qpos, load_clip, qpos_to_frames, write_clip
from mocap_refine.generate import generate_trajectory
from mocap_refine.metrics import joint_errors
from mocap_refine.model import JOINTS, layout, load_model
from mocap_refine.pipeline import load_reference, prepare, pybullet_clip_path
from mocap_refine.reference import build_reference, uniform_frame_dt, uniform_times


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


# ----------------------------------------------------------------- uneven durations (issue 14)

NOMINAL_DT = 1 / 30
SHOULDER_AXIS = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)   # fixed axis, DeepMimic local frame
SHOULDER_RATE = 3.0                                         # rad/s, constant
ROOT_YAW_RATE = 1.0                                         # rad/s about DeepMimic's up axis y


def _smooth_frames(t: np.ndarray) -> np.ndarray:
    """(len(t), 44) DeepMimic frames of a smooth known motion at times t (s):
    root x = sin(t) m at height 0.9 m, root yawing at ROOT_YAW_RATE, right
    shoulder rotating at SHOULDER_RATE about SHOULDER_AXIS, right knee
    -1 + 0.5 sin(2t) rad; every other joint at rest. Durations: NOMINAL_DT."""
    fr = np.zeros((len(t), 44))
    fr[:, 0] = NOMINAL_DT
    fr[:, 1] = np.sin(t)
    fr[:, 2] = 0.9
    for c in (8, 12, 16, 21, 30, 35, 39):                 # identity quaternions' w
        fr[:, c] = 1.0
    fr[:, 4:8] = np.stack([np.cos(ROOT_YAW_RATE * t / 2), 0 * t, np.sin(ROOT_YAW_RATE * t / 2), 0 * t], axis=1)
    half = SHOULDER_RATE * t / 2
    fr[:, 25] = np.cos(half)
    fr[:, 26:29] = np.sin(half)[:, None] * SHOULDER_AXIS
    fr[:, 20] = -1.0 + 0.5 * np.sin(2 * t)
    return fr


def _durations(kind: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(14)
    if kind == "random_0.5x_to_2x":
        return NOMINAL_DT * rng.uniform(0.5, 2.0, n)
    if kind == "drift_0.7x_to_1.4x":
        return NOMINAL_DT * np.linspace(0.7, 1.4, n)
    if kind == "drift_and_jitter":
        return NOMINAL_DT * np.linspace(1.3, 0.8, n) * rng.uniform(0.9, 1.1, n)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["random_0.5x_to_2x", "drift_0.7x_to_1.4x", "drift_and_jitter"])
def test_uneven_clip_resampled_on_its_time_axis(tmp_path, caplog, kind):
    """A smooth motion sampled at uneven times comes back on the uniform grid.

    Tolerances: linear interpolation over a gap h errs by at most
    h^2/8 max|f''|; the largest gap is 2 nominal frames (1/15 s), so root x
    (|f''| <= 1 m/s^2) is within 5.6e-4 m and the knee (|f''| <= 2 rad/s^2)
    within 1.1e-3 rad. Slerp is exact for a rotation at constant angular
    velocity about a fixed axis: root and shoulder agree to file precision.
    """
    durations = _durations(kind, 60)
    times = np.concatenate([[0.0], np.cumsum(durations)])
    frames = _smooth_frames(times)
    frames[:-1, 0] = durations
    path = tmp_path / f"{kind}.txt"
    write_clip(path, frames, "none")
    model = load_model()
    clip = load_clip(path)
    dt, resample = uniform_frame_dt(clip)
    assert resample and dt == pytest.approx(np.median(clip.frame_dt), rel=1e-12)
    with caplog.at_level(logging.INFO, logger="mocap_refine.reference"):
        ref, diag = build_reference(clip, ground_correction=False)
    span = float(np.cumsum(clip.frame_dt)[-1])
    n = ref.n_frames
    assert n == int(np.floor(span / dt + 1e-6)) + 1
    assert (n - 1) * dt <= span + 1e-12 * span and span - (n - 1) * dt < dt   # inside the span, up to its end
    assert ref.frame_dt == dt and diag["summary"]["resampled"]
    expected = frames_to_qpos(model, _smooth_frames(np.arange(n) * dt))
    h = np.diff(times).max()
    assert h <= 2 * NOMINAL_DT + 1e-12
    np.testing.assert_allclose(ref.qpos[:, 0], expected[:, 0], rtol=0, atol=h ** 2 / 8 * 1.0)   # root x
    np.testing.assert_allclose(ref.qpos[:, 1:3], expected[:, 1:3], rtol=0, atol=1e-12)          # root y, height
    lay = layout(model)
    shoulder = lay.qpos_adr[JOINTS.index("right_shoulder")]
    knee = lay.qpos_adr[JOINTS.index("right_knee")]
    for adr in (3, shoulder):
        q, e = ref.qpos[:, adr:adr + 4], expected[:, adr:adr + 4]
        assert np.minimum(np.abs(q - e).max(axis=1), np.abs(q + e).max(axis=1)).max() < 1e-9, adr
    np.testing.assert_allclose(ref.qpos[:, knee], expected[:, knee], rtol=0, atol=h ** 2 / 8 * 2.0)
    # Treating the frames as evenly spaced would be far off: the test can tell.
    naive = frames_to_qpos(model, frames)[:n]
    assert np.abs(naive[:, knee] - expected[:len(naive), knee]).max() > 10 * h ** 2 / 8 * 2.0
    # One log line says what was done: file, frames and duration spread before, frames and rate after.
    msgs = [r.getMessage() for r in caplog.records if r.name == "mocap_refine.reference"]
    assert len(msgs) == 1, msgs
    msg = msgs[0]
    for needle in (str(path), f"{clip.n_frames} frames", f"{clip.frame_dt.min():.6g}..{clip.frame_dt.max():.6g} s",
                   f"to {n} frames", f"({1 / dt:.6g} Hz)"):
        assert needle in msg, (needle, msg)


def test_uniform_times_never_leave_the_span():
    """Random, drifting and DeepMimic-style durations: the grid starts at 0,
    steps by dt, ends inside the span and less than a step before its end."""
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(300):
        n = int(rng.integers(1, 200))
        base = rng.choice([1 / 120, 1 / 60, 0.0333333015, 0.033332, 1 / 24, 0.0625])
        d = np.full(n, base)
        kind = rng.integers(4)
        if kind == 1:
            d *= rng.uniform(0.5, 2.0, n)
        elif kind == 2:
            d *= np.linspace(1.0, rng.uniform(0.5, 2.0), n)
        elif kind == 3:
            d[rng.integers(0, n, size=int(rng.integers(1, 4)))] = rng.choice([0.0666666, 0.0499999, 0.02, 0.1])
        cases.append(d)
    for d in cases:
        dt = float(np.median(d))
        t = uniform_times(d, dt)
        span = np.cumsum(d)[-1]
        assert t[0] == 0.0 and t[-1] <= span and span - t[-1] < dt
        assert (np.diff(t) <= dt * (1 + 1e-12)).all() and (np.diff(t) > 0).all()


DEEPMIMIC_DT = 0.0333333015
ODD_DURATIONS = (0.0666666, 0.0499999, 0.02, 0.1)


@pytest.mark.parametrize("frames_at", [(10,), (5, 17, 30)], ids=["one_frame", "three_frames"])
@pytest.mark.parametrize("odd", ODD_DURATIONS)
def test_deepmimic_style_durations_prepare(tmp_path, odd, frames_at):
    """walk at DeepMimic's written 1/30 s (0.0333333015) with dropped or
    doubled frames (one or three frames lasting 0.0666666, 0.0499999, 0.02 or
    0.1 s) prepares without error on a 0.0333333015 s grid inside the clip
    (these crashed in scipy's Slerp: samples up to 1e-6 step past the end)."""
    frames = load_clip(pybullet_clip_path("walk")).frames.copy()
    frames[:, 0] = DEEPMIMIC_DT
    frames[list(frames_at), 0] = odd
    clip_path = tmp_path / "walk_uneven.txt"
    write_clip(clip_path, frames, "wrap")
    prepare(clip_path, tmp_path / "reference.h5", tmp_path / "diagnostics.csv")
    ref, attrs = load_reference(tmp_path / "reference.h5")
    span = float(np.sum(frames[:-1, 0]))
    assert attrs["resampled"] and ref.frame_dt == pytest.approx(DEEPMIMIC_DT, rel=1e-12)
    assert ref.n_frames == int(np.floor(span / DEEPMIMIC_DT + 1e-6)) + 1
    assert np.isfinite(ref.qpos).all() and np.isfinite(ref.qvel).all()
