"""What the fall rule saw around a replay's first fall.

For a clip folder of `benchmarks/tracking.py --work DIR` (DIR/{clip}/
reference.h5 and DIR/{clip}/{method}.h5, the evaluated replay), prints for
the frames around the first fall: the root height and orientation error,
the mean and largest joint error, and for every body the contact criterion
flags at the fall frame, the lowest point of its geom in the replay and in
the reference. This is how track.md's remark on crawl (a hand on the floor
9 cm below the reference's, from joint errors of about 0.02 rad) reads off
a run.

Run:
    python benchmarks/tracking.py --set tune --clips crawl --params '{"track": {"w_clearance": 0}}' --work /tmp/tr
    python benchmarks/contact_fall.py /tmp/tr/crawl --method track --before 10 --after 3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import mujoco
import numpy as np

from mocap_refine import pipeline
from mocap_refine.metrics import (contact_bodies, fall_check, floor_touch, joint_errors, reference_contact_near,
                                  root_rot_errors)
from mocap_refine.model import load_model
from mocap_refine.reference import geom_lowest_points


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clip_dir", type=Path, help="DIR/{clip} of benchmarks/tracking.py --work DIR")
    ap.add_argument("--method", default="track")
    ap.add_argument("--before", type=int, default=8, help="frames shown before the fall")
    ap.add_argument("--after", type=int, default=3, help="frames shown after it")
    args = ap.parse_args()
    ref, _ = pipeline.load_reference(args.clip_dir / "reference.h5")
    model = load_model(ref.physics_dt)
    with h5py.File(args.clip_dir / f"{args.method}.h5", "r") as f:
        qpos = f["replay/qpos"][()]
    fall = fall_check(model, qpos, ref.qpos)
    print(f"{args.clip_dir.name} {args.method}: first fall at frame {fall.frame} ({fall.reason or 'none'})")
    if fall.frame < 0:
        return
    bodies, geoms = contact_bodies(model)
    flagged = np.nonzero((floor_touch(model, qpos) & ~reference_contact_near(model, ref.qpos))[fall.frame])[0]
    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, bodies[b]) for b in flagged]
    frames = np.arange(max(0, fall.frame - args.before), min(len(qpos), fall.frame + args.after + 1))
    jerr = joint_errors(model, qpos[frames], ref.qpos[frames])
    rot = root_rot_errors(qpos[frames], ref.qpos[frames])
    low = {n: (geom_lowest_points(model, qpos[frames], geoms[b]).min(axis=1),
               geom_lowest_points(model, ref.qpos[frames], geoms[b]).min(axis=1)) for n, b in zip(names, flagged)}
    head = "frame  root_z_err_m  root_rot_deg  joint_err_mean_rad  joint_err_max_rad"
    print(head + "".join(f"  {n}_low_m (ref)" for n in names))
    for i, t in enumerate(frames):
        cells = "".join(f"  {low[n][0][i]:+.3f} ({low[n][1][i]:+.3f})" for n in names)
        print(f"{t:5d}  {qpos[t, 2] - ref.qpos[t, 2]:+12.3f}  {rot[i]:12.1f}  {jerr[i].mean():18.3f}  "
              f"{jerr[i].max():17.3f}{cells}")


if __name__ == "__main__":
    main()
