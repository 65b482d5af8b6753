"""Benchmark of every method on real clips: wall time, simulated physics steps
per second, and that rate as a fraction of a raw ``mj_step`` loop on the same
model, measured in the same run (so the ratio, not the absolute time, is the
figure to compare across machines).

The raw loop replays the method's own actions (same motion, same contact
load; the cost of a step depends on the contacts); the rate against a loop
from frame 0 with zero controls (an unactuated falling body) is reported too.

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

import h5py
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


def raw_step_rate(reference_h5: str, actions: np.ndarray | None = None, seconds: float = 2.0) -> float:
    """mj_step calls per second in a plain single-thread Python loop.

    With `actions` (T, nu): the loop replays those actions from the
    reference state of frame 0 (one action held per frame's substeps), so it
    steps through the same motion, and the same contact load, as the
    method's result; the cost of a step depends on the contacts, and a
    falling unactuated body (the loop without actions, from frame 0) is not
    what the methods simulate."""
    ref, _ = pipeline.load_reference(reference_h5)
    model = load_model(ref.physics_dt)
    data = mujoco.MjData(model)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        mujoco.mj_resetData(model, data)
        data.qpos[:] = ref.qpos[0]
        data.qvel[:] = ref.qvel[0]
        if actions is None:
            for _ in range(200):
                mujoco.mj_step(model, data)
            n += 200
            continue
        for a in actions:
            data.ctrl[:] = a
            for _ in range(ref.substeps):
                mujoco.mj_step(model, data)
        n += actions.shape[0] * ref.substeps
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", nargs="+", default=["dance_a", "walk"])
    ap.add_argument("--methods", nargs="+", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    args = ap.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    methods = list(args.methods or config["methods"])
    # A warm-started method needs its init method's actions: add them.
    for method in list(methods):
        init = (config.get(method) or {}).get("init")
        if init and init not in methods:
            methods.append(init)
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
            raw_frame0 = raw_step_rate(ref_h5)
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
                with h5py.File(out, "r") as f:
                    raw = raw_step_rate(ref_h5, f["actions"][()])
                rows.append({"clip": clip, "method": method, "threads": args.threads,
                             "wall_s": wall, "physics_steps": counter.steps,
                             "steps_per_s": rate, "raw_mj_step_per_s": raw,
                             "fraction_of_raw": rate / raw, "raw_frame0_mj_step_per_s": raw_frame0,
                             "fraction_of_raw_frame0": rate / raw_frame0})
                print(f"{clip:8s} {method:9s} wall {wall:8.2f} s  steps {counter.steps:10d}  "
                      f"{rate:9.0f}/s  raw(replay) {raw:7.0f}/s  fraction {rate / raw:5.2f}  "
                      f"(raw from frame 0 {raw_frame0:7.0f}/s: {rate / raw_frame0:5.2f})", flush=True)
    out_dir = ROOT / "benchmarks" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out_dir / "methods.csv", index=False, float_format="%.4g")


if __name__ == "__main__":
    main()
