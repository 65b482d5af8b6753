"""Benchmark of every method on real clips: wall time, simulated physics steps
per second, and that rate as a fraction of a raw ``mj_step`` loop on the same
model, measured in the same run (so the ratio, not the absolute time, is the
figure to compare across machines).

Steps are counted at the one place all simulation goes through
(``mujoco.rollout.rollout``, called by ``sim.simulate_frames``): batch size x
steps per call. A method running rollouts on several threads can exceed 1.0.

Run:  python benchmarks/methods.py [--clips dance_a walk] [--methods ...] [--threads 2]
Writes benchmarks/out/methods.csv and prints the table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import mujoco
import numpy as np
import pandas as pd
import yaml
from mujoco import rollout as mj_rollout

from mocap_refine import pipeline
from mocap_refine.methods import get_method
from mocap_refine.model import load_model

ROOT = Path(__file__).resolve().parents[1]


class StepCounter:
    """Counts physics steps done through mujoco.rollout.rollout."""

    def __init__(self):
        self.steps = 0
        self._orig = mj_rollout.rollout

    def __enter__(self):
        def counted(model, data, initial_state, control=None, **kw):
            state0 = np.atleast_2d(initial_state)
            ctrl = np.asarray(control)
            nbatch = max(state0.shape[0], ctrl.shape[0] if ctrl.ndim == 3 else 1)
            nstep = kw.get("nstep") or (ctrl.shape[-2] if ctrl.ndim >= 2 else 1)
            self.steps += int(nbatch) * int(nstep)
            return self._orig(model, data, initial_state, control, **kw)
        mj_rollout.rollout = counted
        return self

    def __exit__(self, *exc):
        mj_rollout.rollout = self._orig


def raw_step_rate(reference_h5: str, seconds: float = 2.0) -> float:
    """mj_step calls per second, single thread, from the clip's first frame."""
    ref, _ = pipeline.load_reference(reference_h5)
    model = load_model(ref.physics_dt)
    data = mujoco.MjData(model)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        data.qpos[:] = ref.qpos[0]
        data.qvel[:] = ref.qvel[0]
        for _ in range(200):
            mujoco.mj_step(model, data)
        n += 200
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", nargs="+", default=["dance_a", "walk"])
    ap.add_argument("--methods", nargs="+", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    args = ap.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    methods = args.methods or config["methods"]
    # Warm-start sources first, so their actions exist when others need them.
    methods = sorted(methods, key=lambda m: m not in ("baseline", "invdyn"))
    for method in methods:  # imports (scipy.signal, ...) out of the timings
        get_method(method)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for clip in args.clips:
            clip_path = tmp / f"{clip}.txt"
            pipeline.import_clip(clip, clip_path)
            ref_h5 = str(tmp / clip / "reference.h5")
            pipeline.prepare(clip_path, ref_h5, tmp / clip / "diagnostics.csv")
            raw = raw_step_rate(ref_h5)
            for method in methods:
                params = dict(config.get(method) or {})
                init = params.get("init")
                init_h5 = str(tmp / clip / f"{init}.h5") if init else None
                out = tmp / clip / f"{method}.h5"
                with StepCounter() as counter:
                    start = time.perf_counter()
                    pipeline.compute_actions(ref_h5, method, params, out, init_h5=init_h5,
                                             threads=args.threads)
                    wall = time.perf_counter() - start
                rate = counter.steps / wall if wall > 0 else float("nan")
                rows.append({"clip": clip, "method": method, "threads": args.threads,
                             "wall_s": wall, "physics_steps": counter.steps,
                             "steps_per_s": rate, "raw_mj_step_per_s": raw,
                             "fraction_of_raw": rate / raw})
                print(f"{clip:8s} {method:9s} wall {wall:8.2f} s  steps {counter.steps:10d}  "
                      f"{rate:9.0f}/s  raw {raw:7.0f}/s  fraction {rate / raw:5.2f}", flush=True)
    out_dir = ROOT / "benchmarks" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out_dir / "methods.csv", index=False, float_format="%.4g")


if __name__ == "__main__":
    main()
