"""Feedback gains against action noise: for each clip, a method's actions
(computed here through the workflow's stage), then 10 seeded rollouts with
Gaussian action noise (std 0.05 and 0.1, normalised units) open loop and
with the controller's gains (mocap_refine.controller). Reports the fraction
of rollouts that never fall, the mean tracked fraction and err50.

Run: python benchmarks/controller_noise.py [--clips walk run jump] [--method track]
Writes benchmarks/out/controller_noise.csv and prints a Markdown table.

    python benchmarks/controller_noise.py --generated 0 --regularization 0.01 1 10 100
measures the controller's regularisation on a simulator-made trajectory
(generate_trajectory, its own actions as the nominal): mean joint error over
the clip under noise 0.05, open loop and per regularisation. controller.py's
REGULARIZATION was chosen this way on seed 0 (the tests use seed 1).
"""

from __future__ import annotations

import argparse
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
    args = ap.parse_args()
    if args.generated is not None:
        generated(args.generated, args.regularization, args.threads)
        return
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips:
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
                    tracked = [1.0 if f < 0 else (f - 1) / T for f in falls]
                    rows.append({"clip": clip, "method": args.method, "noise_std": std, "controller": mode,
                                 "never_falls": f"{sum(f < 0 for f in falls)}/{SEEDS}",
                                 "tracked_fraction": float(np.mean(tracked)), "err50_rad": float(np.mean(errs))})
                    print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "controller_noise.csv", index=False, float_format="%.6g")
    print(table.to_markdown(index=False, floatfmt=".3g"))


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
