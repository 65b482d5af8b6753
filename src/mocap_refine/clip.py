"""DeepMimic clip files: reading with validation, writing, and conversion to
MuJoCo generalised coordinates.

A clip file is a JSON object with "Loop" ("wrap" or "none") and "Frames", a
list of frames of 44 numbers (see DEEPMIMIC_FACTS.md). DeepMimic is Y-up;
the model is Z-up; the change of frame is the rotation C = rot_x(+90 deg),
which maps (x, y, z) -> (x, -z, y). Positions map by C, rotations (root
global and joint local alike) by conjugation, R -> C R C^T.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from .model import HINGE_JOINTS, JOINTS, layout

DEEPMIMIC_CLIPS = (
    "backflip", "cartwheel", "crawl", "dance_a", "dance_b", "getup_facedown",
    "getup_faceup", "jump", "kick", "punch", "roll", "run", "spin",
    "spinkick", "walk",
)
FRAME_WIDTH = 44
# Quaternions are normalised; one whose norm is off by more than
# QUAT_NORM_TOL is counted in the clip's diagnostics, and one off by more
# than QUAT_NORM_REJECT is rejected as corrupt. The reject bound is loose on
# purpose: the DeepMimic clips shipped with pybullet are not normalised (kick's
# right hip reaches norm 0.58, roll 0.81, backflip 0.88) and DeepMimic itself
# normalises them on load, so the rotation they mean is unambiguous.
QUAT_NORM_TOL = 1e-3     # |norm - 1|, dimensionless
QUAT_NORM_REJECT = 0.5   # |norm - 1|, dimensionless

# Plausibility limits checked at load (ClipError beyond them). They are
# generous on purpose: they catch corrupt or mis-exported files, not unusual
# motion. The 15 pybullet clips stay far inside them (largest values: hinge
# 2.76 rad, root height 0.09..1.18 m, root speed 5.3 m/s, joint speed
# 31 rad/s, frame duration 0.0625 s, clip length 4.4 s).
MIN_FRAMES = 2                       # frames
FRAME_DURATION_MAX_S = 1.0           # s, any frame but the last (whose duration is unused)
CLIP_DURATION_MAX_S = 3600.0         # s, sum of the durations
HINGE_ANGLE_MAX_RAD = 2 * np.pi      # rad, |knee or elbow angle|
ROOT_HEIGHT_RANGE_M = (-1.0, 5.0)    # m, root y (DeepMimic is Y-up)
ROOT_HORIZONTAL_MAX_M = 1e4          # m, |root x| and |root z| (an hour of walking away at 1.4 m/s, 5 km, stays inside)
ROOT_SPEED_MAX_M_S = 20.0            # m/s, root displacement between frames / duration
JOINT_SPEED_MAX_RAD_S = 100.0        # rad/s, rotation between frames / duration (root and every joint)

# Column of each joint's data in a frame; quaternions (w, x, y, z), hinges one angle.
_COLUMNS = {}
_col = 8
for _name in JOINTS:
    _COLUMNS[_name] = _col
    _col += 1 if _name in HINGE_JOINTS else 4
assert _col == FRAME_WIDTH

# Name of every frame column, for messages: "duration", "root x" .. "root z"
# (root y is the height), "root quaternion w" .., "chest quaternion x" ..,
# "right_knee".
COLUMN_NAMES = ["duration", "root x", "root y", "root z"] + [f"root quaternion {a}" for a in "wxyz"]
for _name in JOINTS:
    COLUMN_NAMES += [_name] if _name in HINGE_JOINTS else [f"{_name} quaternion {a}" for a in "wxyz"]
COLUMN_NAMES = tuple(COLUMN_NAMES)
assert len(COLUMN_NAMES) == FRAME_WIDTH

_C = Rotation.from_euler("x", np.pi / 2)


class ClipError(ValueError):
    """A clip file that cannot be used; the message names file, frame, problem."""


@dataclass
class Clip:
    """A validated clip in DeepMimic's own units and frame.

    frames: (T, 44) array as in the file (quaternions normalised).
    frame_dt: (T-1,) seconds between consecutive frames.
    loop: "wrap" or "none".
    """
    path: str
    frames: np.ndarray
    loop: str
    quat_norm_max_dev: float = 0.0
    quat_norm_fixed: int = 0
    frame_dt: np.ndarray = field(init=False)

    def __post_init__(self):
        self.frame_dt = self.frames[:-1, 0].copy()

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


def _fail(path, msg, frame=None):
    where = f"{path}" if frame is None else f"{path}: frame {frame}"
    raise ClipError(f"{where}: {msg}")


def load_clip(path) -> Clip:
    """Read and validate a DeepMimic clip file.

    Rejects (ClipError, one line naming the file, and where there is one the
    frame, the column and the value): unreadable JSON, missing keys, frames
    not 44 numbers wide, and anything outside the module's limits: fewer than
    MIN_FRAMES frames, non-finite numbers, durations (all but the last frame)
    <= 0 or above FRAME_DURATION_MAX_S, a clip longer than
    CLIP_DURATION_MAX_S, quaternions whose norm differs from 1 by more than
    QUAT_NORM_REJECT, knee or elbow angles beyond +-HINGE_ANGLE_MAX_RAD, root
    heights outside ROOT_HEIGHT_RANGE_M, a horizontal root position beyond
    +-ROOT_HORIZONTAL_MAX_M, root speeds between frames above
    ROOT_SPEED_MAX_M_S, root or joint rotation speeds between frames above
    JOINT_SPEED_MAX_RAD_S. Every quaternion is normalised; how far the worst
    one was off and how many were off by more than QUAT_NORM_TOL (1e-3) are
    kept on the Clip.
    """
    path = str(path)
    if Path(path).is_dir():
        _fail(path, "is a folder, not a clip file")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ClipError(f"{path}: cannot read clip file ({e.strerror})") from e
    except UnicodeDecodeError as e:
        _fail(path, f"not a text clip file: byte {e.start} (0x{e.object[e.start]:02x}) is not UTF-8 text; "
                    "a DeepMimic clip is JSON text (a binary, HDF5 or Latin-1 file given as a clip?)")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        _fail(path, f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})")
    if not isinstance(obj, dict) or "Frames" not in obj:
        _fail(path, 'not a DeepMimic clip: expected a JSON object with a "Frames" list')
    loop = obj.get("Loop", "none")
    if loop not in ("wrap", "none"):
        _fail(path, f'"Loop" must be "wrap" or "none", got {loop!r}')
    raw = obj["Frames"]
    if not isinstance(raw, list):
        _fail(path, '"Frames" must be a list of frames')
    if len(raw) < MIN_FRAMES:
        _fail(path, f"needs at least {MIN_FRAMES} frames, has {len(raw)}")
    for i, fr in enumerate(raw):
        if not isinstance(fr, list) or len(fr) != FRAME_WIDTH:
            n = len(fr) if isinstance(fr, list) else type(fr).__name__
            _fail(path, f"has {n} values, expected {FRAME_WIDTH}", i)
        for k, v in enumerate(fr):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                _fail(path, f"{COLUMN_NAMES[k]} (value {k}) is not a number ({v!r})", i)
    frames = np.asarray(raw, dtype=float)
    bad = ~np.isfinite(frames)
    if bad.any():
        i, k = np.argwhere(bad)[0]
        _fail(path, f"{COLUMN_NAMES[k]} (value {k}) is not finite ({frames[i, k]})", int(i))
    _check_durations(path, frames[:-1, 0])
    max_dev, fixed = _normalise_quaternions(path, frames)
    _check_plausible(path, frames)
    return Clip(path, frames, loop, max_dev, fixed)


def _check_durations(path, dur: np.ndarray) -> None:
    """Durations of all frames but the last (whose duration is unused)."""
    if (dur <= 0).any():
        i = int(np.argmax(dur <= 0))
        _fail(path, f"duration (value 0) is {dur[i]} s, not positive", i)
    if (dur > FRAME_DURATION_MAX_S).any():
        i = int(np.argmax(dur > FRAME_DURATION_MAX_S))
        _fail(path, f"duration (value 0) is {dur[i]} s, above the {FRAME_DURATION_MAX_S:g} s limit "
                    "on one frame", i)
    start = np.cumsum(dur)  # start[i]: time at which frame i + 1 starts
    if start[-1] > CLIP_DURATION_MAX_S:
        i = int(np.argmax(start > CLIP_DURATION_MAX_S)) + 1
        _fail(path, f"starts at {start[i - 1]:.6g} s (the sum of the durations, value 0, of the frames "
                    f"before it), past the {CLIP_DURATION_MAX_S:g} s limit on a clip's length", i)


def _quat_columns() -> list[tuple[str, int]]:
    return [("root", 4)] + [(n, _COLUMNS[n]) for n in JOINTS if n not in HINGE_JOINTS]


def _normalise_quaternions(path, frames: np.ndarray) -> tuple[float, int]:
    """Normalise every quaternion in place; reject norms off by more than
    QUAT_NORM_REJECT. Returns (largest |norm - 1|, count off by > QUAT_NORM_TOL)."""
    max_dev, fixed = 0.0, 0
    for name, c in _quat_columns():
        q = frames[:, c:c + 4]
        norm = np.linalg.norm(q, axis=1)
        dev = np.abs(norm - 1.0)
        off = dev > QUAT_NORM_REJECT
        if off.any():
            i = int(np.argmax(off))
            _fail(path, f"{name} quaternion (values {c}-{c + 3}) has norm {norm[i]:.6f}, "
                        f"more than the {QUAT_NORM_REJECT:g} limit away from 1", i)
        max_dev = max(max_dev, float(dev.max()))
        fixed += int((dev > QUAT_NORM_TOL).sum())
        frames[:, c:c + 4] = q / norm[:, None]
    return max_dev, fixed


def _first_over(values: np.ndarray) -> tuple[int, int] | None:
    """(row, column) of the first True of a 2-D boolean array in row order, or None."""
    hits = np.argwhere(values)
    return None if len(hits) == 0 else (int(hits[0, 0]), int(hits[0, 1]))


def _check_plausible(path, frames: np.ndarray) -> None:
    """Hinge angles, root height, root and joint speeds between frames
    (frames already finite, durations positive, quaternions normalised)."""
    hinges = [(n, _COLUMNS[n]) for n in HINGE_JOINTS]
    angles = frames[:, [c for _, c in hinges]]
    hit = _first_over(np.abs(angles) > HINGE_ANGLE_MAX_RAD)
    if hit:
        i, j = hit
        name, c = hinges[j]
        _fail(path, f"{name} (value {c}) is {frames[i, c]:.6g} rad, beyond the "
                    f"+-{HINGE_ANGLE_MAX_RAD:.4g} rad (2 pi) limit", i)
    lo, hi = ROOT_HEIGHT_RANGE_M
    height = frames[:, 2]
    out = (height < lo) | (height > hi)
    if out.any():
        i = int(np.argmax(out))
        _fail(path, f"root y (value 2, the height) is {height[i]:.6g} m, outside the "
                    f"[{lo:g}, {hi:g}] m limit", i)
    hit = _first_over(np.abs(frames[:, [1, 3]]) > ROOT_HORIZONTAL_MAX_M)
    if hit:
        i, j = hit
        c = (1, 3)[j]
        _fail(path, f"{COLUMN_NAMES[c]} (value {c}) is {frames[i, c]:.6g} m, beyond the "
                    f"+-{ROOT_HORIZONTAL_MAX_M:g} m limit on the root's horizontal position", i)
    dur = frames[:-1, 0]
    step = np.linalg.norm(np.diff(frames[:, 1:4], axis=0), axis=1)
    speed = step / dur
    if (speed > ROOT_SPEED_MAX_M_S).any():
        i = int(np.argmax(speed > ROOT_SPEED_MAX_M_S))
        _fail(path, f"root position (values 1-3) moves {step[i]:.6g} m from frame {i} in "
                    f"{dur[i]:.6g} s, {speed[i]:.6g} m/s, above the {ROOT_SPEED_MAX_M_S:g} m/s limit", i + 1)
    # Rotation angle between consecutive frames: |delta| for hinges, the
    # angle of q_i^-1 q_(i+1) (sign-free) for the root and ball joints.
    cols = _quat_columns() + hinges
    turn = np.empty((len(dur), len(cols)))
    for j, (name, c) in enumerate(cols):
        if name in HINGE_JOINTS:
            turn[:, j] = np.abs(np.diff(frames[:, c]))
        else:
            r = Rotation.from_quat(frames[:, c:c + 4], scalar_first=True)
            turn[:, j] = (r[:-1].inv() * r[1:]).magnitude()
    omega = turn / dur[:, None]
    hit = _first_over(omega > JOINT_SPEED_MAX_RAD_S)
    if hit:
        i, j = hit
        name, c = cols[j]
        what = f"{name} (value {c})" if name in HINGE_JOINTS else f"{name} quaternion (values {c}-{c + 3})"
        _fail(path, f"{what} turns {turn[i, j]:.6g} rad from frame {i} in {dur[i]:.6g} s, "
                    f"{omega[i, j]:.6g} rad/s, above the {JOINT_SPEED_MAX_RAD_S:g} rad/s limit", i + 1)


def write_clip(path, frames: np.ndarray, loop: str = "none") -> None:
    """Write (T, 44) frames as a DeepMimic clip file (atomically)."""
    from .io import atomic_path
    frames = np.asarray(frames, dtype=float)
    if not np.isfinite(frames).all():
        i, k = np.argwhere(~np.isfinite(frames))[0]
        raise ValueError(f"{path}: not written: frame {i}, {COLUMN_NAMES[k]} (value {k}) is {frames[i, k]}")
    obj = {"Loop": loop, "Frames": [[float(f"{v:.12g}") for v in fr] for fr in frames]}
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=0))


def _quat_dm_to_mj(q_wxyz: np.ndarray) -> np.ndarray:
    r = _C * Rotation.from_quat(q_wxyz, scalar_first=True) * _C.inv()
    out = r.as_quat(scalar_first=True, canonical=False)
    return out


def _quat_mj_to_dm(q_wxyz: np.ndarray) -> np.ndarray:
    r = _C.inv() * Rotation.from_quat(q_wxyz, scalar_first=True) * _C
    return r.as_quat(scalar_first=True, canonical=False)


def _continuous_sign(q: np.ndarray) -> np.ndarray:
    """Flip quaternion signs so consecutive frames lie in one hemisphere."""
    q = q.copy()
    for t in range(1, len(q)):
        if np.dot(q[t], q[t - 1]) < 0:
            q[t] = -q[t]
    return q


def frames_to_qpos(model: mujoco.MjModel, frames: np.ndarray) -> np.ndarray:
    """(T, 44) DeepMimic frames -> (T, nq) MuJoCo qpos, Z-up."""
    lay = layout(model)
    T = frames.shape[0]
    qpos = np.zeros((T, model.nq))
    p = frames[:, 1:4]
    qpos[:, 0:3] = np.stack([p[:, 0], -p[:, 2], p[:, 1]], axis=1)
    qpos[:, 3:7] = _continuous_sign(_quat_dm_to_mj(frames[:, 4:8]))
    for name, adr in zip(JOINTS, lay.qpos_adr):
        c = _COLUMNS[name]
        if name in HINGE_JOINTS:
            qpos[:, adr] = frames[:, c]
        else:
            qpos[:, adr:adr + 4] = _continuous_sign(_quat_dm_to_mj(frames[:, c:c + 4]))
    return qpos


def qpos_to_frames(model: mujoco.MjModel, qpos: np.ndarray, frame_dt) -> np.ndarray:
    """(T, nq) qpos -> (T, 44) DeepMimic frames; inverse of frames_to_qpos.
    frame_dt: scalar or (T,) durations written in column 0."""
    lay = layout(model)
    T = qpos.shape[0]
    frames = np.zeros((T, FRAME_WIDTH))
    frames[:, 0] = frame_dt
    x, y, z = qpos[:, 0], qpos[:, 1], qpos[:, 2]
    frames[:, 1:4] = np.stack([x, z, -y], axis=1)
    frames[:, 4:8] = _quat_mj_to_dm(qpos[:, 3:7])
    for name, adr in zip(JOINTS, lay.qpos_adr):
        c = _COLUMNS[name]
        if name in HINGE_JOINTS:
            frames[:, c] = qpos[:, adr]
        else:
            frames[:, c:c + 4] = _quat_mj_to_dm(qpos[:, adr:adr + 4])
    return frames


def finite_difference_qvel(model: mujoco.MjModel, qpos: np.ndarray, dt: float) -> np.ndarray:
    """(T, nq) qpos sampled every dt seconds -> (T, nv) qvel in MuJoCo's
    tangent space (mj_differentiatePos): central differences inside, one-sided
    at both ends. Truncation error is O(dt^2) inside, O(dt) at the ends."""
    T = qpos.shape[0]
    qvel = np.zeros((T, model.nv))
    for t in range(T):
        a, b = max(t - 1, 0), min(t + 1, T - 1)
        mujoco.mj_differentiatePos(model, qvel[t], (b - a) * dt, qpos[a], qpos[b])
    return qvel


def heading_yaw(quat_wxyz: np.ndarray) -> np.ndarray:
    """Yaw (rad, about world z) of the body x axis of Z-up root quaternions."""
    r = Rotation.from_quat(np.atleast_2d(quat_wxyz), scalar_first=True)
    fwd = r.apply([1.0, 0.0, 0.0])
    return np.arctan2(fwd[:, 1], fwd[:, 0])


def repeat_cycles(qpos: np.ndarray, cycles: int) -> np.ndarray:
    """Repeat a looping clip `cycles` times, carrying the root's horizontal
    offset and heading across cycles as DeepMimic does: cycle c is the base
    clip moved by the planar transform (yaw, x, y) that takes frame 0's root
    to the last frame's root, applied c times. The last frame of a cycle and
    the first of the next are the same pose, so it is kept once.
    (T, nq) -> ((T-1) * cycles + 1, nq)."""
    if cycles < 1:
        raise ValueError(f"cycles must be >= 1, got {cycles}")
    if cycles == 1:
        return qpos.copy()
    yaw0, yaw1 = heading_yaw(qpos[[0, -1], 3:7])
    dyaw = yaw1 - yaw0
    p0 = qpos[0, :2]
    out = [qpos[:-1]]
    prev_last = qpos[-1]
    for c in range(1, cycles):
        rot = Rotation.from_euler("z", c * dyaw)
        seg = qpos.copy()
        seg[:, :2] = (qpos[:, :2] - p0) @ rot.as_matrix()[:2, :2].T + prev_last[:2]
        quat = (rot * Rotation.from_quat(qpos[:, 3:7], scalar_first=True)).as_quat(scalar_first=True)
        seg[:, 3:7] = _continuous_sign(np.concatenate([prev_last[None, 3:7], quat]))[1:]
        prev_last = seg[-1]
        out.append(seg[:-1] if c < cycles - 1 else seg)
    return np.concatenate(out, axis=0)
