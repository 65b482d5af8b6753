"""How far track's iLQR gets in one window, from different starting actions.

Runs track's window optimiser (methods.track._track_window) on the window
at --start-frame of a library clip, from zero actions (track's default
start), from the reference's inverse dynamics, or from another method's
actions (as track's init: the reference is the first nominal), and prints the window
loss after every iteration with the fraction of applied actions at a limit.
The loss of the other methods' actions on the same window, played open
loop from the same state, is printed beside it. This is the diagnosis
behind track.md's remark on dance_a: from zero actions six iterations stop
far above what gradient reaches on its first window.

Run:
    python benchmarks/track_window.py --clip dance_a --iterations 14 --compare gradient invdyn
    python benchmarks/track_window.py --clip dance_a --start invdyn --params '{"control_limits": false}'
    python benchmarks/track_window.py --clip dance_b --rate 24 --iterations 30   # the clip resampled to 24 Hz
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import yaml

from mocap_refine import pipeline
from mocap_refine.config import init_chain
from mocap_refine.methods import method_settings, run_method
from mocap_refine.methods import track as tr
from mocap_refine.metrics import reference_contact_near
from mocap_refine.model import load_model
from mocap_refine.problem import TrackingProblem
from mocap_refine.variants import write_variants

ROOT = Path(__file__).resolve().parents[1]


def method_actions(model, ref, config: dict, method: str) -> np.ndarray:
    """(T, nu) actions of `method` with the repository's config (its init chain first)."""
    actions = None
    for m in reversed(init_chain(config, method)):
        actions = run_method(m, model, ref, config.get(m) or {}, init_actions=actions, threads=2).actions
    return actions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", default="dance_a")
    ap.add_argument("--start", default="zero", help="zero, inverse_dynamics or a method name")
    ap.add_argument("--rate", type=float, help="resample the clip to this frame rate (Hz) first, as the variants")
    ap.add_argument("--start-frame", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--params", default="{}", help="track settings as JSON")
    ap.add_argument("--compare", nargs="*", default=[], help="methods whose window loss to print beside")
    args = ap.parse_args()
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        ref_h5 = Path(tmp) / "reference.h5"
        clip_path = pipeline.pybullet_clip_path(args.clip)
        if args.rate:
            clip_path = Path(tmp) / f"{write_variants(tmp, [args.clip], rates=(args.rate,), mirror=False)[0]}.txt"
        pipeline.prepare(clip_path, ref_h5, Path(tmp) / "diagnostics.csv",
                         physics_hz=float(config["physics"]["target_hz"]))
        ref, _ = pipeline.load_reference(ref_h5)
    model = load_model(ref.physics_dt)
    problem = TrackingProblem.build(model, ref, threads=2)
    s = method_settings("track", {**(config.get("track") or {}), **json.loads(args.params),
                                  "iterations": args.iterations, "tolerance": 0.0})
    w = s.frame_weights(ref.frame_dt)
    t0, W = args.start_frame, min(tr.frames_for(s.horizon_s, ref.frame_dt), problem.n_actions - args.start_frame)
    x0 = problem.ref_states[t0]

    def window_loss(u):
        roll = problem.rollout(u[None], x0)
        return float(np.sum(tr._window_residuals(problem, roll.states, u[None], t0, w) ** 2))

    for m in args.compare:
        u = method_actions(model, ref, config, m)[t0:t0 + W]
        print(f"{m:>18}: window loss {window_loss(u):10.2f} open loop, actions at a limit "
              f"{np.mean(np.abs(u) >= 1 - 1e-9):.2f}")
    # As in track: the nominal states are the reference's, the actions the start's.
    if args.start == "zero":
        u0 = np.zeros((W, model.nu))
    elif args.start == "inverse_dynamics":
        u0 = tr.inverse_dynamics_actions(problem)[t0:t0 + W]
    else:
        u0 = method_actions(model, ref, config, args.start)[t0:t0 + W]
    plan = problem.ref_states[t0:t0 + W + 1].copy()
    near = reference_contact_near(model, ref.qpos) if s.fall_aware else None
    cache = tr._JacobianCache(problem, s.relinearize_tol, s.fd_eps, s.smooth_contacts, s.jacobian_stride,
                              s.jacobians, s.transition_stride)
    forward = tr.forward_pass
    its = []

    def logged(*a, **k):
        X, U, diverged = forward(*a, **k)
        losses = np.sum(tr._window_residuals(problem, X, U, t0, w) ** 2, axis=1)
        losses[diverged >= 0] = np.inf
        its.append((losses, np.mean(np.abs(U) >= 1 - 1e-9, axis=(1, 2))))
        return X, U, diverged

    tr.forward_pass = logged
    try:
        _, _, first, last, n, _ = tr._track_window(problem, cache, plan, t0, u0, s, w, s.regularization, None, near)
    finally:
        tr.forward_pass = forward
    print(f"track from {args.start}, window frames {t0}..{t0 + W}, step sizes {list(s.step_sizes)}:")
    for i, (losses, sat) in enumerate(its):
        print(f"  forward pass {i + 1:2d}: losses {np.array2string(losses, precision=1)}, "
              f"at a limit {np.array2string(sat, precision=2)}")
    print(f"window loss after the first step {first:.2f}, after {n} iterations {last:.2f}")


if __name__ == "__main__":
    main()
