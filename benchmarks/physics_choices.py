"""Evidence for the model's armature and physics rate (README "Physics model").

For each armature and physics rate, from the standing pose, 32 smooth random
per-frame action sequences (std 0.3, 30 Hz, 1 s) are rolled out with the
project's own simulate_frames. Reported:
  diverged  share of rollouts MuJoCo's instability guard or the speed bound flagged
  max_speed median over rollouts of the largest joint speed (rad/s)
  drift_rad mean joint-angle difference after 10 frames against the same model at
            4x the physics rate (integration error of the frame map)
  steps_s   physics steps per second of the batched rollout (this machine, this run)

Run: python benchmarks/physics_choices.py
"""

from __future__ import annotations

import time

import mujoco
import numpy as np
from scipy.ndimage import gaussian_filter1d

from mocap_refine import model as model_mod
from mocap_refine.generate import standing_qpos
from mocap_refine.metrics import joint_errors
from mocap_refine.sim import DataPool, make_state, simulate_frames, split_state

FRAME_DT = 1.0 / 30.0


def compiled(armature: float, physics_hz: float) -> tuple[mujoco.MjModel, int]:
    substeps, dt = model_mod.substeps_for(FRAME_DT, physics_hz)
    xml = model_mod.humanoid_xml(dt, armature=armature)
    return mujoco.MjModel.from_xml_string(xml), substeps


def random_actions(nu: int, frames: int, samples: int, std: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((samples, frames + 8, nu))
    smooth = gaussian_filter1d(white, sigma=2.0, axis=1)[:, 4:4 + frames]
    return np.clip(smooth * std / smooth.std(), -1, 1)


def run(armature: float, physics_hz: float, actions: np.ndarray) -> dict:
    model, substeps = compiled(armature, physics_hz)
    q0 = standing_qpos(model)
    s0 = make_state(model, q0, np.zeros(model.nv))
    pool = DataPool(model, 2)
    start = time.perf_counter()
    out = simulate_frames(model, s0, actions, substeps, pool)
    wall = time.perf_counter() - start
    _, q, v = split_state(model, out.states)
    fine, fine_sub = compiled(armature, 4 * physics_hz)
    ref = simulate_frames(fine, s0, actions[:, :10], fine_sub, DataPool(fine, 2))
    _, qf, _ = split_state(fine, ref.states)
    ok = out.diverged_frame < 0
    drift = joint_errors(model, q[ok, 10], qf[ok, 10]).mean() if ok.any() else np.nan
    return {
        "diverged": float(np.mean(~ok)),
        "max_speed": float(np.median(np.abs(v[:, :, 6:]).max(axis=(1, 2)))),
        "drift_rad": float(drift),
        "steps_s": actions.shape[0] * actions.shape[1] * substeps / wall,
    }


def main() -> None:
    nu = 28
    actions = random_actions(nu, 30, 32, 0.3)
    print(f"{'armature':>9} {'hz':>6} {'diverged':>9} {'max_speed':>10} {'drift_rad':>10} {'steps_s':>9}")
    for armature in (0.0, 0.01, 0.02, 0.1, 1.0):
        for hz in (300.0, 600.0, 1200.0):
            r = run(armature, hz, actions)
            print(f"{armature:9.2f} {hz:6.0f} {r['diverged']:9.2f} {r['max_speed']:10.1f} "
                  f"{r['drift_rad']:10.4f} {r['steps_s']:9.0f}")


if __name__ == "__main__":
    main()
