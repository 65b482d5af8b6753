"""How often does invdyn recover known actions exactly, and why not always?

On trajectories the simulator made (generate_trajectory: standing start,
PD hold plus smooth random torques, 20 physics steps per 1/30 s frame) the
exact per-frame actions are known. This script runs invdyn and reports, per
seed, how many frames come back to 1e-6, split by what the ground contacts
do inside the frame (mocap_refine.generate.frame_contact_classes: switching,
contact, airborne), and, for the frames that do not come back, the action error and the frame
residual the solve stopped at (qpos RMS, rad): the floor below which
invdyn's residual on real mocap cannot tell a physically impossible clip
from a frame the solve did not resolve.

--line-scan SEED FRAME evaluates the frame map on the straight line from the
known action to invdyn's answer and counts its jumps: the evidence that the
answer sits in a small smooth piece of a rugged map, out of reach of a local
solve from anywhere else.

Run: python benchmarks/invdyn_known_answer.py [--seeds 0 1 2 3] [--seconds 1.0]
     python benchmarks/invdyn_known_answer.py --line-scan 0 0 --seconds 0.3
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mocap_refine.generate import CONTACT_CLASSES, frame_contact_classes, generate_trajectory
from mocap_refine.methods import get_method
from mocap_refine.methods.invdyn import _frame_residual
from mocap_refine.model import layout, load_model
from mocap_refine.sim import DataPool, make_state, simulate_frames

EXACT = 1e-6


def recovery(seeds, seconds: float, threads: int) -> None:
    print(f"generate_trajectory({seconds} s, 1/30 s frames, 20 substeps), invdyn defaults, exact = {EXACT:g}")
    totals = {c: [0, 0] for c in CONTACT_CLASSES}
    floor, err = [], []
    for seed in seeds:
        gen = generate_trajectory(seconds=seconds, frame_dt=1 / 30, seed=seed)
        model = load_model(gen.physics_dt)
        cls = frame_contact_classes(model, gen)
        t0 = time.perf_counter()
        res = get_method("invdyn")(model, gen.reference(), {}, None, threads)
        wall = time.perf_counter() - t0
        e = np.abs(res.actions - gen.actions).max(axis=1)
        ok = e < EXACT
        parts = []
        for c in CONTACT_CLASSES:
            sel = cls == c
            totals[c][0] += int((ok & sel).sum())
            totals[c][1] += int(sel.sum())
            parts.append(f"{c} {int((ok & sel).sum())}/{int(sel.sum())}")
        floor.extend(res.datasets["invdyn/frame_residual"][~ok, 0])
        err.extend(e[~ok])
        print(f"seed {seed}: exact {int(ok.sum())}/{ok.size} ({', '.join(parts)}); "
              f"root height end {gen.qpos[-1, 2]:.2f} m; {wall:.0f} s; not exact: {np.nonzero(~ok)[0].tolist()}")
    n_ok = sum(v[0] for v in totals.values())
    n = sum(v[1] for v in totals.values())
    print(f"all: exact {n_ok}/{n}; " + ", ".join(f"{c} {v[0]}/{v[1]}" for c, v in totals.items()))
    if err:
        print(f"frames not exact: action error median {np.median(err):.3f}, max {np.max(err):.3f}; "
              f"frame residual qpos RMS median {np.median(floor):.1e} rad, max {np.max(floor):.1e} rad")


def line_scan(seed: int, frame: int, seconds: float, threads: int, points: int = 2001) -> None:
    gen = generate_trajectory(seconds=seconds, frame_dt=1 / 30, seed=seed)
    model = load_model(gen.physics_dt)
    lay = layout(model)
    pool = DataPool(model, threads)
    res = get_method("invdyn")(model, gen.reference(), {}, None, threads)
    a_true, a_found = gen.actions[frame], res.actions[frame]
    s = np.linspace(0.0, 1.0, points)
    acts = a_true + s[:, None] * (a_found - a_true)
    state0 = make_state(model, gen.qpos[frame], gen.qvel[frame])
    out = simulate_frames(model, np.repeat(state0[None], points, 0), acts[:, None, :], gen.substeps, pool)
    r = _frame_residual(model, lay, out.states[:, 1], gen.qpos[frame + 1], gen.qvel[frame + 1], gen.frame_dt)
    cost = np.linalg.norm(r, axis=1)
    step = np.abs(np.diff(cost))
    jumps = np.nonzero(step > 5.0 * np.median(step))[0]
    dist = np.abs(a_found - a_true).max()
    print(f"seed {seed} frame {frame}: invdyn's action is {dist:.3f} (max abs) from the known one; "
          f"residual norm (rad/s) there {cost[-1]:.3g}, at the known action {cost[0]:.3g}")
    print(f"on the line between them: {jumps.size} jumps, max residual {cost.max():.3g}; the smooth piece "
          f"holding the known action ends {s[jumps[0]] * dist if jumps.size else dist:.1e} from it")
    print("residual norm at 0, 0.1, ..., 1 of the way:", np.round(cost[::(points - 1) // 10], 3).tolist())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--line-scan", type=int, nargs=2, metavar=("SEED", "FRAME"))
    args = ap.parse_args()
    if args.line_scan:
        line_scan(*args.line_scan, args.seconds, args.threads)
    else:
        recovery(args.seeds, args.seconds, args.threads)


if __name__ == "__main__":
    main()
