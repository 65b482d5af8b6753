"""Which floor-contact tolerance for the fall rule's contact criterion?

metrics.fall_check counts a fall when a body other than the feet touches the
floor (lowest point below FLOOR_CONTACT_TOL_M) while the reference's same
body touches it at none of the frames t-2..t+2, with one test for replay and
reference. The kinematic reference floats or sinks by centimetres, so a
replay that rests on the floor where the reference floats can register a
contact the reference lacks. This measures, on every DeepMimic reference,
how many frames a perfect tracker resting on the floor would flag: the
reference moved down by its own lowest point at every frame where that is
between 0 and 0.1 m (never up, never in flight phases), per tolerance.

Run: python benchmarks/fall_contact_tolerance.py [--clips walk roll ...]
Prints per clip the reference's lowest point (min, median, max) and, per
tolerance, "flagged frames @ first flagged frame" (-1: none).
"""

from __future__ import annotations

import argparse

import numpy as np

from mocap_refine.clip import DEEPMIMIC_CLIPS, load_clip
from mocap_refine.metrics import contact_falls
from mocap_refine.model import load_model
from mocap_refine.pipeline import pybullet_clip_path
from mocap_refine.reference import build_reference, lowest_points

TOLERANCES_M = (0.01, 0.02, 0.03, 0.04, 0.05)
GROUND_BAND_M = 0.1  # frames whose lowest point is above this are in flight: not moved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="*", default=list(DEEPMIMIC_CLIPS))
    args = ap.parse_args()
    for name in args.clips:
        ref, _ = build_reference(load_clip(pybullet_clip_path(name)))
        model = load_model(ref.physics_dt)
        low = lowest_points(model, ref.qpos)
        grounded = ref.qpos.copy()
        grounded[:, 2] -= np.where((low > 0) & (low < GROUND_BAND_M), low, 0.0)
        cells = []
        for tol in TOLERANCES_M:
            c = contact_falls(model, grounded, ref.qpos, tol_m=tol)
            cells.append(f"{tol:.2f} m: {int(c.sum()):3d}@{int(np.argmax(c)) if c.any() else -1:<4d}")
        print(f"{name:15s} T={ref.n_frames - 1:4d} lowest {low.min():+.3f} {np.median(low):+.3f} "
              f"{low.max():+.3f} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
