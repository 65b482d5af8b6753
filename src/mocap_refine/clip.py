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
QUAT_NORM_TOL = 1e-3
QUAT_NORM_REJECT = 0.5

# Column of each joint's data in a frame; quaternions (w, x, y, z), hinges one angle.
_COLUMNS = {}
_col = 8
for _name in JOINTS:
    _COLUMNS[_name] = _col
    _col += 1 if _name in HINGE_JOINTS else 4
assert _col == FRAME_WIDTH

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

    Rejects (ClipError, one line naming file, frame and problem): unreadable
    JSON, missing keys, fewer than 2 frames, frames not 44 numbers wide,
    non-finite numbers, non-positive durations (all but the last frame),
    quaternions whose norm differs from 1 by more than QUAT_NORM_REJECT (0.5).
    Every quaternion is normalised; how far the worst one was off and how many
    were off by more than QUAT_NORM_TOL (1e-3) are kept on the Clip.
    """
    path = str(path)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ClipError(f"{path}: cannot read clip file ({e.strerror})") from e
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
    if len(raw) < 2:
        _fail(path, f"needs at least 2 frames, has {len(raw)}")
    for i, fr in enumerate(raw):
        if not isinstance(fr, list) or len(fr) != FRAME_WIDTH:
            n = len(fr) if isinstance(fr, list) else type(fr).__name__
            _fail(path, f"has {n} values, expected {FRAME_WIDTH}", i)
        for k, v in enumerate(fr):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                _fail(path, f"value {k} is not a number ({v!r})", i)
    frames = np.asarray(raw, dtype=float)
    bad = ~np.isfinite(frames)
    if bad.any():
        i, k = np.argwhere(bad)[0]
        _fail(path, f"value {k} is not finite ({frames[i, k]})", int(i))
    dur = frames[:-1, 0]
    if (dur <= 0).any():
        i = int(np.argmax(dur <= 0))
        _fail(path, f"duration {dur[i]} s is not positive", i)
    quat_cols = [("root", 4)] + [(n, _COLUMNS[n]) for n in JOINTS if n not in HINGE_JOINTS]
    max_dev, fixed = 0.0, 0
    for name, c in quat_cols:
        q = frames[:, c:c + 4]
        norm = np.linalg.norm(q, axis=1)
        dev = np.abs(norm - 1.0)
        off = dev > QUAT_NORM_REJECT
        if off.any():
            i = int(np.argmax(off))
            _fail(path, f"{name} quaternion has norm {norm[i]:.6f}, not 1 "
                        f"(rejected beyond {QUAT_NORM_REJECT} off)", i)
        max_dev = max(max_dev, float(dev.max()))
        fixed += int((dev > QUAT_NORM_TOL).sum())
        frames[:, c:c + 4] = q / norm[:, None]
    return Clip(path, frames, loop, max_dev, fixed)


def write_clip(path, frames: np.ndarray, loop: str = "none") -> None:
    """Write (T, 44) frames as a DeepMimic clip file (atomically)."""
    from .io import atomic_path
    frames = np.asarray(frames, dtype=float)
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
