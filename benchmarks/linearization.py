"""How well track's frame Jacobians predict the real frame map.

track's iLQR rests on A_t = df/dx and B_t = df/du of one frame (finite
differences, derivatives.frame_jacobians). This measures, on tune clips,
along the rollout of track's start (inverse dynamics of the reference),
the relative error |f(x + dx, u) - f(x, u) - A dx| / |f(x + dx, u) - f(x, u)|
for random tangent perturbations dx of several sizes (and the same for
actions with B), with Jacobians of the exact model and of the smooth-contact
planning copy (solimp[0] = 0). An error near or above 1 means the linear
model does not predict the state's next frame: the feedback gains of the
backward pass are then unreliable however the optimiser is tuned.

Run:
    python benchmarks/linearization.py --table-out docs/results/linearization.md
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from mocap_refine import pipeline
from mocap_refine.derivatives import frame_jacobians, perturb_states, state_difference
from mocap_refine.methods.track import inverse_dynamics_actions
from mocap_refine.model import load_model, smooth_contact_model
from mocap_refine.problem import TrackingProblem
from mocap_refine.sim import DataPool, simulate_frames

CLIPS = ("walk", "jump", "spinkick", "crawl")   # tune clips (benchmarks/tracking.py TUNE)
SIZES = (1e-5, 1e-3, 1e-2)
FRAMES = 8        # frames per clip, evenly spread over the first half
DIRECTIONS = 8    # random directions per frame and size


def measure(clip: str, work: Path, seed: int = 0, eps: float = 1e-6, centered: bool = False) -> list[dict]:
    ref_h5 = work / f"{clip}.h5"
    pipeline.prepare(pipeline.pybullet_clip_path(clip), ref_h5, work / f"{clip}.csv")
    ref, _ = pipeline.load_reference(ref_h5)
    model = load_model(ref.physics_dt)
    problem = TrackingProblem.build(model, ref, threads=2)
    actions = inverse_dynamics_actions(problem)
    roll = problem.rollout(actions)
    states = roll.states[0]
    # Frames of the first half, before the rollout diverges (states after are frozen copies).
    last = problem.n_actions // 2 - 1
    if roll.diverged_frame[0] >= 0:
        last = min(last, int(roll.diverged_frame[0]) - 2)
    frames = np.linspace(0, max(1, last), FRAMES).astype(int)
    rng = np.random.default_rng(seed)
    rows = []
    for jac_name, jac_model in (("exact", model), ("smooth_contacts", smooth_contact_model(model))):
        pool = DataPool(jac_model, 2)
        A, B = frame_jacobians(jac_model, states[frames], actions[frames], ref.substeps, pool, eps, centered)
        x, u = states[frames], actions[frames]
        x1 = simulate_frames(model, x, u[:, None], ref.substeps, problem.pool).states[:, 1]
        for size in SIZES:
            dx = rng.normal(size=(len(frames), DIRECTIONS, A.shape[1])) * size
            du = rng.normal(size=(len(frames), DIRECTIONS, model.nu)) * size
            xs = perturb_states(model, np.repeat(x[:, None], DIRECTIONS, axis=1), dx).reshape(-1, x.shape[1])
            us = np.repeat(u[:, None], DIRECTIONS, axis=1).reshape(-1, model.nu)
            out_x = simulate_frames(model, xs, us[:, None], ref.substeps, problem.pool).states[:, 1]
            u_pert = np.clip(us + du.reshape(-1, model.nu), -1.0, 1.0)
            xr = np.repeat(x[:, None], DIRECTIONS, axis=1).reshape(-1, x.shape[1])
            out_u = simulate_frames(model, xr, u_pert[:, None], ref.substeps, problem.pool).states[:, 1]
            base = np.repeat(x1[:, None], DIRECTIONS, axis=1).reshape(-1, x.shape[1])
            real_x = state_difference(model, out_x, base).reshape(len(frames), DIRECTIONS, -1)
            real_u = state_difference(model, out_u, base).reshape(len(frames), DIRECTIONS, -1)
            du_eff = (u_pert - us).reshape(len(frames), DIRECTIONS, -1)
            pred_x = np.einsum("fij,fdj->fdi", A, dx)
            pred_u = np.einsum("fij,fdj->fdi", B, du_eff)
            err_x = np.linalg.norm(real_x - pred_x, axis=-1) / np.linalg.norm(real_x, axis=-1)
            # Actions at the [-1, 1] bounds pushed outwards do not move: no direction to judge.
            moved = np.linalg.norm(du_eff, axis=-1) > 0.1 * size
            err_u = (np.linalg.norm(real_u - pred_u, axis=-1) / np.linalg.norm(real_u, axis=-1))[moved]
            rows.append({"clip": clip, "jacobians": jac_name, "fd_eps": eps, "centered": centered,
                         "perturbation": size,
                         "state_relerr_median": float(np.median(err_x)),
                         "state_relerr_p90": float(np.quantile(err_x, 0.9)),
                         "action_relerr_median": float(np.median(err_u)),
                         "action_relerr_p90": float(np.quantile(err_u, 0.9))})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", nargs="+", default=list(CLIPS))
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "linearization.csv"))
    ap.add_argument("--table-out", help="also write the Markdown table here")
    ap.add_argument("--eps", type=float, nargs="+", default=[1e-6], help="finite-difference steps to compare")
    ap.add_argument("--centered", action="store_true", help="centred differences")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [r for clip in args.clips for eps in args.eps
                for r in measure(clip, Path(tmp), eps=eps, centered=args.centered)]
    table = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, float_format="%.6g")
    md = ("Generated by `python benchmarks/linearization.py"
          + (f" --table-out {args.table_out}" if args.table_out else "") + "`.\n\n"
          + "Relative error of the frame Jacobians' prediction of the next frame's state, for random "
          "tangent perturbations of the state (A) and of the actions (B) of the given size, "
          f"{FRAMES} frames x {DIRECTIONS} directions per clip.\n\n"
          + table.to_markdown(index=False, floatfmt=".3g"))
    print(md)
    if args.table_out:
        Path(args.table_out).write_text(md + "\n")


if __name__ == "__main__":
    main()
