"""How close to the floor must the reference's body be to count as touching it?

metrics.fall_check counts a contact fall when a body other than the feet
touches the floor in the replay (lowest point below FLOOR_CONTACT_TOL_M: the
simulation is exact) while the reference's same body is within
REFERENCE_CONTACT_MARGIN_M of the floor at none of the frames t-2..t+2 (the
reference is kinematic mocap that floats or sinks by centimetres). This
measures both sides of that margin on every DeepMimic reference, built as
the results build it (build_reference, ground correction on unless
--no-ground-correction), per margin in MARGINS_M:

(a) false falls: contact-fall frames of a perfect tracker, the reference
    itself replayed as the simulation, (1) moved by a constant dz in SHIFTS_M
    (a resting tracker a few centimetres lower or higher than the mocap) and
    (2) "grounded": every frame whose lowest point is within GROUND_BAND_M of
    the floor moved up or down so that point is on z = 0 (the tracker rests
    on the floor where the mocap floats or sinks; flight frames untouched).
    Cells: the worst of these 5 variants' flagged frames per margin (0 is the
    goal); "need": the smallest margin (0.005 m steps) from which on the
    grounded variant / all 5 variants flag nothing. Beyond that, "tilt5":
    the grounded tracker with its root also turned 5 degrees about the
    horizontal axes along or across its heading (either sign; a tracker
    with a small orientation error), worst flagged frames at the chosen
    margin: a tracker that differs from the mocap, not the mocap's own error.
(b) true falls, which must still be caught:
    lying: every frame of the clip turned 90 degrees about the horizontal
      axis across its heading (face down) and put on the floor; the fall
      check's (frame, reason) and the frames the contact criterion alone
      flags at margin 0.03 m (the former one test for both sides) and at
      the chosen margin (it flags fewer when the lying body rests on a shin
      or a hand that the reference holds within the margin of the floor).
      Every clip falls at frame 0 (by height or orientation first).
    touch: every (frame t, body b) whose reference body is more than
      TOUCH_CLEAR_M above the floor at all of t-2..t+2 (a hand, a knee...
      that the reference holds up); the replay is the reference with frame t
      lowered until body b's lowest point is on the floor. Cells: cases the
      contact criterion flags / cases, and among the cases lowered by at most
      FALL_HEIGHT_M (no height fall) those that fall_check reports as
      (t, "contact") / those cases.

Run: python benchmarks/fall_contact_tolerance.py [--clips walk roll ...]
     [--no-ground-correction]
"""

from __future__ import annotations

import argparse

import mujoco
import numpy as np

from mocap_refine.clip import DEEPMIMIC_CLIPS, load_clip
from mocap_refine.metrics import (
    FALL_CONTACT_WINDOW_FRAMES, FALL_HEIGHT_M, FLOOR_CONTACT_TOL_M, REFERENCE_CONTACT_MARGIN_M, Fall,
    contact_bodies, contact_falls, fall_check,
)
from mocap_refine.model import load_model
from mocap_refine.pipeline import pybullet_clip_path
from mocap_refine.reference import build_reference, geom_lowest_points, lowest_points

MARGINS_M = (0.03, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10, 0.12)
NEED_STEP_M = 0.005
TILT_DEG = 5.0
SHIFTS_M = (-0.04, -0.02, 0.02, 0.04)
GROUND_BAND_M = 0.15  # frames whose lowest point is farther from the floor are in flight: not moved
TOUCH_CLEAR_M = 0.2


def false_fall_variants(model, qpos):
    """name -> replay: the reference moved by each constant shift, and grounded."""
    out = {}
    for dz in SHIFTS_M:
        q = qpos.copy()
        q[:, 2] += dz
        out[f"{dz * 100:+.0f}cm"] = q
    low = lowest_points(model, qpos)
    q = qpos.copy()
    q[:, 2] -= np.where(np.abs(low) < GROUND_BAND_M, low, 0.0)
    out["grounded"] = q
    return out


def turned(model, qpos, angle_deg, across=True):
    """Every frame's root turned by angle_deg about the horizontal axis
    across its heading (across=True; the root's x axis is its forward) or
    along it, about the root; heights unchanged."""
    data = mujoco.MjData(model)
    out = qpos.copy()
    r, q = np.empty(4), np.empty(4)
    for t in range(qpos.shape[0]):
        data.qpos[:] = qpos[t]
        mujoco.mj_kinematics(model, data)
        fwd = data.xmat[1].reshape(3, 3)[:, 0].copy()
        fwd[2] = 0.0
        fwd /= np.linalg.norm(fwd)
        axis = np.array([-fwd[1], fwd[0], 0.0]) if across else fwd  # z x fwd: the lateral axis
        mujoco.mju_axisAngle2Quat(r, axis, np.radians(angle_deg))
        mujoco.mju_mulQuat(q, r, qpos[t, 3:7])
        out[t, 3:7] = q
    return out


def lying(model, qpos):
    """Every frame turned 90 degrees across its heading (face down), lowest
    point on the floor."""
    out = turned(model, qpos, 90.0)
    out[:, 2] -= lowest_points(model, out)
    return out


def tilted_variants(model, qpos):
    """The grounded tracker with its root turned +-TILT_DEG along and across
    the heading (grounded on the turned pose's lowest point where the
    reference's frame is within GROUND_BAND_M of the floor)."""
    near = np.abs(lowest_points(model, qpos)) < GROUND_BAND_M
    out = {}
    for across in (True, False):
        for sign in (-1, 1):
            q = turned(model, qpos, sign * TILT_DEG, across)
            q[:, 2] -= np.where(near, lowest_points(model, q), 0.0)
            out[f"{'pitch' if across else 'roll'}{sign * TILT_DEG:+.0f}"] = q
    return out


def needed_margin(model, variants, qpos_ref):
    """Smallest margin (NEED_STEP_M steps from FLOOR_CONTACT_TOL_M up to
    0.2 m) from which on no variant flags a frame."""
    grid = np.round(np.arange(FLOOR_CONTACT_TOL_M, 0.2 + 1e-9, NEED_STEP_M), 4)
    bad = [m for m in grid if any(contact_falls(model, q, qpos_ref, ref_margin_m=m).any()
                                  for q in variants.values())]
    return max(bad) + NEED_STEP_M if bad else FLOOR_CONTACT_TOL_M


def touch_cases(model, qpos):
    """(flagged by the contact criterion, cases, fall_check (t, 'contact') among
    the cases lowered by <= FALL_HEIGHT_M, those cases)."""
    _, geoms = contact_bodies(model)
    flat = np.concatenate(geoms)
    starts = np.cumsum([0] + [len(g) for g in geoms[:-1]])
    body_low = np.minimum.reduceat(geom_lowest_points(model, qpos, flat), starts, axis=1)
    T, w = qpos.shape[0], FALL_CONTACT_WINDOW_FRAMES
    flagged = cases = contact_ok = shallow = 0
    for t in range(T):
        lo, hi = max(0, t - w), min(T, t + w + 1)
        clear = body_low[lo:hi].min(axis=0) > TOUCH_CLEAR_M
        ref = qpos[lo:hi]
        for b in np.nonzero(clear)[0]:
            sim = ref.copy()
            sim[t - lo, 2] -= body_low[t, b]
            cases += 1
            flagged += bool(contact_falls(model, sim, ref)[t - lo])
            if body_low[t, b] <= FALL_HEIGHT_M:
                shallow += 1
                contact_ok += fall_check(model, sim, ref) == Fall(t - lo, "contact")
    return flagged, cases, contact_ok, shallow


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="*", default=list(DEEPMIMIC_CLIPS))
    ap.add_argument("--no-ground-correction", action="store_true")
    args = ap.parse_args()
    chosen = REFERENCE_CONTACT_MARGIN_M
    print(f"replay touches below {FLOOR_CONTACT_TOL_M} m, reference within the margin; chosen margin "
          f"{chosen} m; ground correction {'off' if args.no_ground_correction else 'on'}")
    print(f"{'':28s} | (a) worst of {', '.join(f'{d * 100:+.0f}cm' for d in SHIFTS_M)}, grounded: "
          f"flagged frames per margin (m) | need (m)   | tilt5 @{chosen}| (b) @{chosen}")
    print(f"{'clip':15s} {'T':>4s} {'shift':>7s} | " + " ".join(f"{m:5.2f}" for m in MARGINS_M)
          + " | grnd  all  |           | lying: fall, contact/T @0.03 @chosen | touch: flagged/cases, "
            "contact/cases<=0.25m")
    for name in args.clips:
        ref, _ = build_reference(load_clip(pybullet_clip_path(name)),
                                 ground_correction=not args.no_ground_correction)
        model = load_model(ref.physics_dt)
        q_ref = ref.qpos
        variants = false_fall_variants(model, q_ref)
        cells = []
        for m in MARGINS_M:
            cells.append(max(int(contact_falls(model, q, q_ref, ref_margin_m=m).sum()) for q in variants.values()))
        need_g = needed_margin(model, {"grounded": variants["grounded"]}, q_ref)
        need_all = needed_margin(model, variants, q_ref)
        tilts = {k: int(contact_falls(model, q, q_ref).sum()) for k, q in tilted_variants(model, q_ref).items()}
        k_tilt = max(tilts, key=tilts.get)
        tilt_cell = f"{tilts[k_tilt]} {k_tilt}" if tilts[k_tilt] else "0"
        lie = lying(model, q_ref)
        f = fall_check(model, lie, q_ref)
        lie_old = int(contact_falls(model, lie, q_ref, ref_margin_m=FLOOR_CONTACT_TOL_M).sum())
        lie_new = int(contact_falls(model, lie, q_ref).sum())
        flagged, cases, contact_ok, shallow = touch_cases(model, q_ref)
        print(f"{name:15s} {ref.n_frames - 1:4d} {ref.ground_shift_m:+.3f} | "
              + " ".join(f"{c:5d}" for c in cells)
              + f" | {need_g:.3f} {need_all:.3f} | {tilt_cell:9s} | {f.frame:2d} {f.reason:11s}"
              + f" {lie_old:3d} {lie_new:3d} /{ref.n_frames:<3d}"
              + f" | {flagged:4d}/{cases:<4d} {contact_ok:3d}/{shallow:<3d}", flush=True)


if __name__ == "__main__":
    main()
