"""Cost and agreement of the two ways to take frame Jacobians.

derivatives.frame_jacobians differences whole frames (one batched rollout);
derivatives.chained_frame_jacobians chains MuJoCo's per-step
mjd_transitionFD over each frame's substeps. On frames of library clips
(reference states, the reference's inverse-dynamics actions), per clip and
thread count: the wall time of one frame's Jacobians over the wall time of
one open-loop replay of the whole clip (all measured in this run), the
speed-up of the chained ones, and the median relative difference of A and
B between the two.

Run:
    python benchmarks/jacobian_cost.py --clips walk jump crawl --threads 1 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mocap_refine import pipeline
from mocap_refine.derivatives import chained_frame_jacobians, frame_jacobians
from mocap_refine.methods.track import inverse_dynamics_actions
from mocap_refine.model import load_model
from mocap_refine.problem import TrackingProblem


def _best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def measure(clip: str, work: Path, threads: int, frames: int, repeats: int) -> dict:
    ref_h5 = work / f"{clip}.h5"
    if not ref_h5.exists():
        pipeline.prepare(pipeline.pybullet_clip_path(clip), ref_h5, work / f"{clip}.csv")
    ref, _ = pipeline.load_reference(ref_h5)
    model = load_model(ref.physics_dt)
    problem = TrackingProblem.build(model, ref, threads)
    actions = inverse_dynamics_actions(problem)
    rows = np.linspace(0, problem.n_actions - 1, min(frames, problem.n_actions)).astype(int)
    states, u = problem.ref_states[rows], actions[rows]
    replay = _best_of(lambda: problem.rollout(actions), repeats)
    whole = _best_of(lambda: frame_jacobians(model, states, u, ref.substeps, problem.pool), repeats)
    chained = _best_of(lambda: chained_frame_jacobians(model, states, u, ref.substeps, problem.pool), repeats)
    A0, B0 = frame_jacobians(model, states, u, ref.substeps, problem.pool)
    A1, B1 = chained_frame_jacobians(model, states, u, ref.substeps, problem.pool)
    rel = lambda X, Y: float(np.median(np.linalg.norm(X - Y, axis=(1, 2)) / np.linalg.norm(Y, axis=(1, 2))))
    # Cost of one frame's Jacobians in replays of the whole clip.
    return {"clip": clip, "threads": threads, "frames": len(rows), "substeps": ref.substeps,
            "whole_frame_replays": whole / len(rows) / replay, "chained_replays": chained / len(rows) / replay,
            "speedup": whole / chained, "A_rel_diff": rel(A1, A0), "B_rel_diff": rel(B1, B0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", nargs="+", default=["walk", "jump", "crawl"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--frames", type=int, default=24, help="frames per clip, evenly spread")
    ap.add_argument("--repeats", type=int, default=3, help="timings: best of this many")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(c, Path(tmp), th, args.frames, args.repeats) for c in args.clips for th in args.threads]
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
