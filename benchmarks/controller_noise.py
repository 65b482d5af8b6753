"""Feedback gains against action noise: for each clip, a method's actions
(computed here through the workflow's stage), then 10 seeded rollouts with
Gaussian action noise (std 0.05 and 0.1, normalised units) open loop and
with the controller's gains (mocap_refine.controller). Reports the fraction
of rollouts that never fall, the mean tracked fraction and err50.

Run: python benchmarks/controller_noise.py [--clips walk run jump] [--method track]
    python benchmarks/controller_noise.py --results results --method gradient
(--results: the reference and actions of a finished workflow run,
results/{clip}/reference.h5 and results/{clip}/actions/{method}.h5, instead
of computing them here.) Writes benchmarks/out/controller_noise.csv and the
table, docs/results/controller_noise.md (--table-out).

    python benchmarks/controller_noise.py --generated 0 --regularization 0.01 1 10 100
measures the controller's regularisation on a simulator-made trajectory
(generate_trajectory, its own actions as the nominal): mean joint error over
the clip under noise 0.05, open loop and per regularisation. controller.py's
REGULARIZATION was chosen this way on seed 0 (the tests use seed 1).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import yaml

from mocap_refine import pipeline
from mocap_refine.controller import REGULARIZATION, closed_loop, feedback_gains
from mocap_refine.metrics import fall_frame, joint_errors
from mocap_refine.model import load_model
from mocap_refine.problem import TrackingProblem
from mocap_refine.sim import split_state

ROOT = Path(__file__).resolve().parents[1]
SEEDS = 10


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", nargs="+", default=["walk", "run", "jump"])
    ap.add_argument("--method", default="track")
    ap.add_argument("--stds", nargs="+", type=float, default=[0.05, 0.1])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--generated", type=int, metavar="SEED",
                    help="instead: a generated trajectory and its own actions, per --regularization")
    ap.add_argument("--regularization", nargs="+", type=float, default=[REGULARIZATION])
    ap.add_argument("--results", type=Path, metavar="DIR",
                    help="a workflow run's results folder: read each clip's reference and the method's "
                         "actions there instead of computing them")
    ap.add_argument("--table-out", type=Path, default=ROOT / "docs" / "results" / "controller_noise.md")
    args = ap.parse_args()
    if args.generated is not None:
        generated(args.generated, args.regularization, args.threads)
        return
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips:
            if args.results is not None:
                reference_h5 = args.results / clip / "reference.h5"
                ref, _ = pipeline.load_reference(reference_h5)
                actions = pipeline.read_actions(args.results / clip / "actions" / f"{args.method}.h5",
                                                reference_h5, ref)["actions"]
            else:
                d = Path(tmp) / clip
                pipeline.import_clip(clip, d / "clip.txt")
                pipeline.prepare(d / "clip.txt", d / "reference.h5", d / "diagnostics.csv")
                pipeline.compute_actions(d / "reference.h5", args.method, config.get(args.method) or {},
                                         d / "actions.h5", threads=args.threads)
                ref, _ = pipeline.load_reference(d / "reference.h5")
                with h5py.File(d / "actions.h5") as f:
                    actions = f["actions"][()]
            model = load_model(ref.physics_dt)
            problem = TrackingProblem.build(model, ref, args.threads)
            states, gains = feedback_gains(problem, actions)
            T = actions.shape[0]
            own_fall = fall_frame(model, split_state(model, states)[1], ref.qpos)  # the noise-free replay
            for std in args.stds:
                for mode in ("open loop", "gains"):
                    falls, errs = [], []
                    for seed in range(SEEDS):
                        noise = std * np.random.default_rng(seed).standard_normal(actions.shape)
                        if mode == "open loop":
                            visited = problem.rollout(np.clip(actions + noise, -1, 1)).states[0]
                        else:
                            visited = closed_loop(problem, actions, states, gains, noise)[0]
                        _, q, _ = split_state(model, visited)
                        falls.append(fall_frame(model, q, ref.qpos))
                        errs.append(joint_errors(model, q, ref.qpos)[1:min(50, T) + 1].mean())
                    # As metrics.summary_metrics: a fall at frame f tracked f - 1 of T transitions.
                    tracked = [1.0 if f < 0 else max(f - 1, 0) / T for f in falls]
                    rows.append({"clip": clip, "method": args.method, "fall_frame_no_noise": own_fall,
                                 "transitions": T, "noise_std": std, "controller": mode,
                                 "never_falls": f"{sum(f < 0 for f in falls)}/{SEEDS}",
                                 "tracked_fraction": float(np.mean(tracked)), "err50_rad": float(np.mean(errs))})
                    print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "controller_noise.csv", index=False, float_format="%.6g")
    shown = " ".join(shlex.quote(a) for a in sys.argv[1:])
    md = (f"Generated by `python benchmarks/controller_noise.py {shown}`.\n\n"
          f"Method {args.method}'s actions per clip, replayed from the reference state of frame 0 with "
          f"Gaussian noise (std in normalised action units, a fresh draw per frame and motor) added to every "
          f"action: `open loop` executes clip(actions + noise, -1, 1), `gains` the feedback controller "
          f"clip(clip(actions + K (x - x_nom), -1, 1) + noise, -1, 1) (mocap_refine.controller, "
          f"regularisation {REGULARIZATION:g}). {SEEDS} seeded rollouts per row (noise of rollout i from "
          f"np.random.default_rng(i), the same for both controllers). never_falls: rollouts the fall rule "
          f"never flags; fall_frame_no_noise: where the actions fall without noise (-1: never), which bounds "
          f"what a controller around them can track; tracked_fraction: mean over rollouts of (fall frame - 1) / transitions (1 without a "
          f"fall); err50_rad: mean over rollouts of the mean joint error over frames 1 .. 50 (the whole "
          f"rollout, also after a fall).\n\n" + table.to_markdown(index=False, floatfmt=".3g") + "\n")
    args.table_out.parent.mkdir(parents=True, exist_ok=True)
    args.table_out.write_text(md)
    print(md)


def generated(seed: int, regularizations, threads: int, std: float = 0.05, seeds: int = 10) -> None:
    from mocap_refine.generate import generate_trajectory
    from mocap_refine.reference import Reference
    g = generate_trajectory(seconds=1.0, frame_dt=1 / 30, seed=seed)
    model = load_model(g.physics_dt)
    ref = Reference(g.qpos, g.qvel, g.frame_dt, g.physics_dt, g.substeps)
    problem = TrackingProblem.build(model, ref, threads)
    noises = [std * np.random.default_rng(s).standard_normal(g.actions.shape) for s in range(seeds)]

    def error(visited):
        return joint_errors(model, split_state(model, visited)[1], ref.qpos).mean()
    open_loop = np.mean([error(problem.rollout(np.clip(g.actions + n, -1, 1)).states[0]) for n in noises])
    print(f"generate_trajectory(seed={seed}), noise {std}, {seeds} seeds: open loop mean joint error {open_loop:.3g} rad")
    for mu in regularizations:
        states, gains = feedback_gains(problem, g.actions, regularization=mu)
        err = np.mean([error(closed_loop(problem, g.actions, states, gains, n)[0]) for n in noises])
        print(f"  regularization {mu:g}: closed loop {err:.3g} rad")


if __name__ == "__main__":
    main()
