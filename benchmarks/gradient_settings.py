"""gradient with other settings on the first frames of a clip: err50, drift50.

How gradient's second-pass defaults were chosen (dance_a first 55 frames,
walk whole): reads a finished run's reference and init actions, runs
`gradient` with the config defaults overridden by --params (JSON), replays
open loop and prints err50_rad, root_drift50_m, the fall frame, the root
error at frames 10..50 and the method's info.

Run:  python benchmarks/gradient_settings.py results/dance_a --frames 55 \\
          --params '{"long_window_frames": 0, "window_frames": 20, "commit_frames": 5, "jacobian": "chain"}'
A second pass from a first one: --save first.npy on the first, --init first.npy on the second.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import h5py
import numpy as np
import yaml

from mocap_refine import pipeline
from mocap_refine.config import method_params, validate_schema
from mocap_refine.methods import run_method
from mocap_refine.model import load_model
from mocap_refine.verify import verify


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip_results", type=Path, help="results/{clip} of a finished run")
    ap.add_argument("--frames", type=int, default=0, help="first N actions only (0: whole clip)")
    ap.add_argument("--params", default="{}", help="JSON overriding config/config.yaml's gradient block")
    ap.add_argument("--init", default="baseline", help="init method (actions/{init}.h5) or an .npy of actions")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save", type=Path, help="write the resulting actions (T, nu) to this .npy (an --init for the next run)")
    args = ap.parse_args()
    ref, _ = pipeline.load_reference(args.clip_results / "reference.h5")
    n = args.frames or ref.n_frames - 1
    ref = dataclasses.replace(ref, qpos=ref.qpos[:n + 1], qvel=ref.qvel[:n + 1])
    if args.init.endswith(".npy"):
        init = np.load(args.init)[:n]
    else:
        with h5py.File(args.clip_results / "actions" / f"{args.init}.h5") as f:
            init = f["actions"][:n]
    config_path = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
    config = validate_schema(yaml.safe_load(config_path.read_text(encoding="utf-8")))
    params = method_params(config, "gradient")
    params.pop("init", None)
    params.update(json.loads(args.params))
    model = load_model(ref.physics_dt)
    t = time.perf_counter()
    res = run_method("gradient", model, ref, params, init, threads=args.threads)
    wall = time.perf_counter() - t
    if args.save:
        np.save(args.save, res.actions)
    v = verify(model, ref.qpos, ref.qvel, res.actions, ref.frame_dt, ref.substeps, args.threads)
    m = v.metrics
    root = {k: round(float(v.root_err[k]), 3) for k in (10, 20, 30, 40, 50) if k <= n}
    print(f"{args.params} init={args.init} err50={m['err50_rad']:.4f} drift50={m['root_drift50_m']:.3f} "
          f"fall={m['fall_frame']} root_err_m={root} wall={wall:.0f}s info={res.info}")


if __name__ == "__main__":
    main()
