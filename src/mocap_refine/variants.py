"""Clip variants the methods never saw: mirrored and resampled clips, written
as ordinary DeepMimic clip files (issue 11).

All functions work on (T, 44) frame arrays in DeepMimic's own frame (Y-up,
X forward, +Z to the character's right; columns as in DEEPMIMIC_FACTS.md).

Mirroring reflects the motion across the character's sagittal plane (the X-Y
plane, z -> -z) and swaps left and right. For the reflection M = diag(1, 1, -1)
a rotation R becomes M R M: a rotation by theta about axis n becomes one by
-theta about M n, so a quaternion (w, x, y, z) becomes (w, -x, -y, z). Knees
and elbows turn about their local z, the mirror plane's normal, and M R_z M =
R_z: their angles are kept. The left limbs are the right ones with every
attach point's z negated and the same (unmirrored) local axes, so the
reflected right-side pose is exactly a left-side pose, and the shoulders'
mirror-image limits map onto each other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from .clip import _COLUMNS, load_clip, write_clip
from .model import HINGE_JOINTS, JOINTS

ROOT_POS = slice(1, 4)
ROOT_QUAT = 4
_QUAT_COLS = [ROOT_QUAT] + [_COLUMNS[n] for n in JOINTS if n not in HINGE_JOINTS]
_LINEAR_COLS = [1, 2, 3] + [_COLUMNS[n] for n in HINGE_JOINTS]
# A span within this fraction of a whole number of new frames counts as that
# whole number: pybullet's clips write 1/30 s as 0.033332 (4e-5 short), and
# without it walk at 15 Hz would end one frame (1/15 s) before the clip does.
SPAN_REL_TOL = 1e-4
RATES_HZ = (15, 24, 60, 120)


def _swap_index() -> np.ndarray:
    """Column permutation of a frame that swaps every right_* joint with its left_* twin."""
    idx = np.arange(44)
    for name in JOINTS:
        if name.startswith("right_"):
            twin = "left_" + name[len("right_"):]
            width = 1 if name in HINGE_JOINTS else 4
            r, l = _COLUMNS[name], _COLUMNS[twin]
            idx[r:r + width], idx[l:l + width] = np.arange(l, l + width), np.arange(r, r + width)
    return idx


_SWAP = _swap_index()


def mirror_frames(frames: np.ndarray) -> np.ndarray:
    """(T, 44) -> (T, 44): the clip reflected across the sagittal plane
    (z -> -z) with left and right swapped. Durations are kept; mirroring
    twice gives back the input exactly (sign flips and a swap)."""
    frames = np.asarray(frames, dtype=float)
    out = frames[:, _SWAP].copy()
    out[:, 3] = -out[:, 3]                    # root position z
    for c in _QUAT_COLS:                      # (w, x, y, z) -> (w, -x, -y, z)
        out[:, c + 1:c + 3] = -out[:, c + 1:c + 3]
    return out                                # hinge angles unchanged


def resample_frames(frames: np.ndarray, hz: float) -> np.ndarray:
    """(T, 44) -> (N, 44): the clip sampled every 1/hz s on its own time
    axis (frame i at the sum of the durations before it). Root position and
    hinge angles are interpolated linearly, quaternions by slerp (shortest
    arc, output in the hemisphere of the nearest input frame). Durations
    become 1/hz. The new frames span the original's time: the last one lies
    at or before the original's last frame (at it when the span is a whole
    number of new frames within SPAN_REL_TOL)."""
    frames = np.asarray(frames, dtype=float)
    if hz <= 0:
        raise ValueError(f"frame rate must be positive, got {hz}")
    times = np.concatenate([[0.0], np.cumsum(frames[:-1, 0])])
    span = times[-1]
    n = span * hz
    n_int = int(np.floor(n + SPAN_REL_TOL * n))
    t_out = np.minimum(np.arange(n_int + 1) / hz, span)
    out = np.empty((n_int + 1, frames.shape[1]))
    out[:, 0] = 1.0 / hz
    for c in _LINEAR_COLS:
        out[:, c] = np.interp(t_out, times, frames[:, c])
    after = np.clip(np.searchsorted(times, t_out), 1, len(times) - 1)
    nearest = np.where(t_out - times[after - 1] <= times[after] - t_out, after - 1, after)
    for c in _QUAT_COLS:
        q_in = frames[:, c:c + 4]
        q = Slerp(times, Rotation.from_quat(q_in, scalar_first=True))(t_out).as_quat(scalar_first=True)
        q[np.einsum("ij,ij->i", q, q_in[nearest]) < 0] *= -1
        out[:, c:c + 4] = q
    return out


def write_variants(out_dir, clips, rates=RATES_HZ, mirror: bool = True) -> list[str]:
    """Write each clip's variants into out_dir as DeepMimic clip files:
    `{clip}_mirror.txt` (if mirror) and `{clip}_{hz}hz.txt` for each rate.
    clips: library clip names (read from pybullet_data), or a mapping
    name -> clip file path. Loop is kept. Returns the variant names written
    (file stems), in order."""
    from .pipeline import pybullet_clip_path  # lazy: pipeline imports every method
    if not isinstance(clips, dict):
        clips = {name: pybullet_clip_path(name) for name in clips}
    out_dir = Path(out_dir)
    names = []
    for name, path in clips.items():
        clip = load_clip(path)
        variants = [(f"{name}_mirror", mirror_frames(clip.frames))] if mirror else []
        variants += [(f"{name}_{hz:g}hz", resample_frames(clip.frames, hz)) for hz in rates]
        for stem, frames in variants:
            write_clip(out_dir / f"{stem}.txt", frames, clip.loop)
            names.append(stem)
    return names
