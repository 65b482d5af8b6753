"""From a validated clip to the reference trajectory the methods track:
qpos per frame (Z-up), optional cycles, ground-height correction, qvel by
finite differences, and per-frame diagnostics (foot height, joint limits)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from .clip import _COLUMNS, Clip, ClipError, finite_difference_qvel, frames_to_qpos, qpos_to_frames, repeat_cycles
from .model import HINGE_JOINTS, JOINT_LIMITS_DM, JOINTS, load_model, substeps_for

FOOT_GEOMS = ("right_foot", "left_foot")
FRAME_DT_REL_TOL = 1e-3
# Steps (dimensionless): a clip whose span falls this little short of a whole
# number of resampling steps still gets the sample at its end.
SPAN_STEP_TOL = 1e-6

log = logging.getLogger(__name__)


@dataclass
class Reference:
    """A reference trajectory ready for simulation.

    qpos: (N, nq) and qvel: (N, nv), N = frames (T = N - 1 actions).
    frame_dt, physics_dt: seconds; substeps: physics steps per frame.
    ground_shift_m: height added to the root by the ground correction.
    """
    qpos: np.ndarray
    qvel: np.ndarray
    frame_dt: float
    physics_dt: float
    substeps: int
    ground_shift_m: float = 0.0
    cycles: int = 1

    @property
    def n_frames(self) -> int:
        return int(self.qpos.shape[0])


def uniform_frame_dt(clip: Clip) -> tuple[float, bool]:
    """The clip's frame duration (s) and whether its frames need resampling.

    Uniform clips (every duration within 0.1% of the median) use their mean
    duration. Otherwise the median duration is the sampling step and the
    clip is resampled onto it (pybullet's roll has one frame lasting two
    frames' time: a dropped frame)."""
    dt = clip.frame_dt
    median = float(np.median(dt))
    if np.all(np.abs(dt - median) <= FRAME_DT_REL_TOL * median):
        return float(dt.mean()), False
    return median, True


def uniform_times(durations: np.ndarray, dt: float) -> np.ndarray:
    """Sample times (s) every dt over the span of frames lasting `durations`
    (N-1,): 0, dt, 2 dt, ... up to the last frame's time, never past it. A
    span within SPAN_STEP_TOL of a step short of a whole number of steps
    (0.0333333015 s written for a doubled 0.0666666 s frame) still gets its
    last sample, placed exactly at the end of the clip."""
    span = float(np.cumsum(durations)[-1])  # as resample_uniform's time axis ends
    n_out = int(np.floor(span / dt + SPAN_STEP_TOL)) + 1
    return np.minimum(np.arange(n_out) * dt, span)


def resample_uniform(model: mujoco.MjModel, qpos: np.ndarray, durations: np.ndarray,
                     dt: float) -> np.ndarray:
    """(N, nq) poses at the cumulative `durations` (N-1,) -> poses every dt
    seconds over the same span (`uniform_times`): linear for positions and
    hinge angles, slerp for the root and ball-joint quaternions. Durations
    may be uneven in any way (dropped or doubled frames, drift, jitter)."""
    times = np.concatenate([[0.0], np.cumsum(durations)])
    t_out = uniform_times(durations, dt)
    n_out = len(t_out)
    out = np.empty((n_out, model.nq))
    quat_adr = [3] + [int(model.jnt_qposadr[j]) for j in range(model.njnt)
                      if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_BALL]
    is_quat = np.zeros(model.nq, dtype=bool)
    for a in quat_adr:
        is_quat[a:a + 4] = True
    for k in np.nonzero(~is_quat)[0]:
        out[:, k] = np.interp(t_out, times, qpos[:, k])
    for a in quat_adr:
        rot = Rotation.from_quat(qpos[:, a:a + 4], scalar_first=True)
        out[:, a:a + 4] = Slerp(times, rot)(t_out).as_quat(scalar_first=True)
    return out


def lowest_points(model: mujoco.MjModel, qpos: np.ndarray, geoms=None) -> np.ndarray:
    """(N, nq) -> (N,) lowest z (m) over the given geoms (default: all body
    geoms, the floor excluded), exact for spheres, capsules and boxes."""
    data = mujoco.MjData(model)
    if geoms is None:
        ids = [g for g in range(model.ngeom) if model.geom_bodyid[g] != 0]
    else:
        ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, g) for g in geoms]
    out = np.empty(qpos.shape[0])
    for t in range(qpos.shape[0]):
        data.qpos[:] = qpos[t]
        mujoco.mj_kinematics(model, data)
        low = np.inf
        for g in ids:
            z = data.geom_xpos[g, 2]
            R = data.geom_xmat[g].reshape(3, 3)
            size = model.geom_size[g]
            gtype = model.geom_type[g]
            if gtype == mujoco.mjtGeom.mjGEOM_SPHERE:
                z -= size[0]
            elif gtype == mujoco.mjtGeom.mjGEOM_CAPSULE:
                z -= abs(R[2, 2]) * size[1] + size[0]
            elif gtype == mujoco.mjtGeom.mjGEOM_BOX:
                z -= np.abs(R[2, :]) @ size
            else:
                raise ValueError(f"lowest_points: unsupported geom type {gtype}")
            low = min(low, z)
        out[t] = low
    return out


def geom_lowest_points(model: mujoco.MjModel, qpos: np.ndarray, geoms=None) -> np.ndarray:
    """(N, nq) -> (N, G) lowest z (m) of each given geom (names or ids;
    default: all body geoms in id order, the floor excluded). The same closed
    forms as :func:`lowest_points`, vectorised over frames and geoms (the
    fall rule calls it on every replay); equal to it up to rounding."""
    data = mujoco.MjData(model)
    if geoms is None:
        ids = [g for g in range(model.ngeom) if model.geom_bodyid[g] != 0]
    else:
        ids = [g if isinstance(g, (int, np.integer)) else mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, g)
               for g in geoms]
    ids = np.asarray(ids, dtype=int)
    types = model.geom_type[ids].astype(int)
    sphere = types == int(mujoco.mjtGeom.mjGEOM_SPHERE)
    capsule = types == int(mujoco.mjtGeom.mjGEOM_CAPSULE)
    box = types == int(mujoco.mjtGeom.mjGEOM_BOX)
    if not (sphere | capsule | box).all():
        raise ValueError(f"geom_lowest_points: unsupported geom type {types[~(sphere | capsule | box)][0]}")
    N = qpos.shape[0]
    z = np.empty((N, len(ids)))
    rz = np.empty((N, len(ids), 3))  # third row of each geom's rotation matrix
    for t in range(N):
        data.qpos[:] = qpos[t]
        mujoco.mj_kinematics(model, data)
        z[t] = data.geom_xpos[ids, 2]
        rz[t] = data.geom_xmat[ids, 6:9]
    size = model.geom_size[ids]
    drop = np.empty_like(z)
    drop[:, sphere] = size[sphere, 0]
    drop[:, capsule] = np.abs(rz[:, capsule, 2]) * size[capsule, 1] + size[capsule, 0]
    drop[:, box] = np.sum(np.abs(rz[:, box, :]) * size[box], axis=-1)
    return z - drop


def ground_shift(lowest: np.ndarray) -> float:
    """Height (m) to add to the root so the clip stands on the floor: the
    median per-frame lowest point goes to z = 0 (mocap feet typically sit a
    centimetre inside the floor), but never so low that frame 0, where every
    replay starts, is inside the floor."""
    return float(max(-np.median(lowest), -lowest[0]))


def joint_limit_violations(frames: np.ndarray) -> np.ndarray:
    """(N, 44) DeepMimic frames -> (N, 12) rad by which each joint exceeds its
    DeepMimic limits (0 inside). Ball joints are measured per axis of their
    rotation vector (exponential map) in DeepMimic's local frame, which has no
    gimbal lock."""
    out = np.zeros((frames.shape[0], len(JOINTS)))
    for j, name in enumerate(JOINTS):
        c = _COLUMNS[name]
        lim = JOINT_LIMITS_DM[name]
        if name in HINGE_JOINTS:
            a = frames[:, c]
            out[:, j] = np.maximum(0, lim[0] - a) + np.maximum(0, a - lim[1])
        else:
            rv = Rotation.from_quat(frames[:, c:c + 4], scalar_first=True).as_rotvec()
            lo = np.array([l[0] for l in lim])
            hi = np.array([l[1] for l in lim])
            over = np.maximum(0, lo - rv) + np.maximum(0, rv - hi)
            out[:, j] = over.max(axis=1)
    return out


def build_reference(clip: Clip, *, ground_correction: bool = True, cycles: int = 1,
                    physics_hz: float = 600.0) -> tuple[Reference, dict]:
    """Clip -> (Reference, diagnostics). diagnostics holds per-frame arrays
    (lowest_foot_m, lowest_point_m before the correction, limit violations)
    for the frames of the base clip, and summary numbers."""
    if cycles > 1 and clip.loop != "wrap":
        raise ClipError(f"{clip.path}: cycles={cycles} needs a looping clip (Loop: wrap), this one is Loop: {clip.loop}")
    frame_dt, resample = uniform_frame_dt(clip)
    try:
        substeps, physics_dt = substeps_for(frame_dt, physics_hz)
    except ValueError as err:
        raise ClipError(f"{clip.path}: {err}") from None
    model = load_model(physics_dt)
    base = frames_to_qpos(model, clip.frames)
    if resample:
        base = resample_uniform(model, base, clip.frame_dt, frame_dt)
        dur = clip.frame_dt
        log.info("%s: uneven frame durations (%d frames over %.6g s, durations %.6g..%.6g s, "
                 "median %.6g s): resampled on the clip's time axis to %d frames every %.6g s (%.6g Hz)",
                 clip.path, clip.n_frames, float(dur.sum()), float(dur.min()), float(dur.max()),
                 float(np.median(dur)), base.shape[0], frame_dt, 1.0 / frame_dt)
    qpos = repeat_cycles(base, cycles)
    lowest = lowest_points(model, qpos)
    lowest_foot = lowest_points(model, qpos, FOOT_GEOMS)
    shift = ground_shift(lowest) if ground_correction else 0.0
    qpos[:, 2] += shift
    qvel = finite_difference_qvel(model, qpos, frame_dt)
    n_base = base.shape[0]
    base_index = np.arange(qpos.shape[0]) % max(n_base - 1, 1)
    if cycles == 1:
        base_index = np.arange(n_base)
    base_frames = clip.frames if not resample else qpos_to_frames(model, base, frame_dt)
    violations = joint_limit_violations(base_frames)[base_index]
    speed = np.abs(qvel[:, 6:]).max(axis=1)
    diag = {
        "lowest_foot_m": lowest_foot,
        "lowest_point_m": lowest,
        "lowest_point_corrected_m": lowest + shift,
        "limit_violation_rad": violations,
        "max_joint_speed_rad_s": speed,
        "summary": {
            "ground_shift_m": shift,
            "lowest_foot_median_m": float(np.median(lowest_foot)),
            "lowest_foot_min_m": float(lowest_foot.min()),
            "limit_violation_max_rad": float(violations.max()),
            "limit_violation_worst_joint": JOINTS[int(np.argmax(violations.max(axis=0)))],
            "limit_violation_frames": int((violations.max(axis=1) > 0).sum()),
            "max_joint_speed_rad_s": float(speed.max()),
            "quat_norm_max_dev": clip.quat_norm_max_dev,
            "quat_norm_fixed": clip.quat_norm_fixed,
            "resampled": bool(resample),
            "source_frames": clip.n_frames,
        },
    }
    ref = Reference(qpos, qvel, frame_dt, physics_dt, substeps, shift, cycles)
    return ref, diag
