"""The tracking problem every method works on, built once: the model, the
reference, the rollout thread pool and the reference's physics states."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from .reference import Reference
from .sim import DataPool, Rollout, simulate_frames
from .verify import reference_states


@dataclass
class TrackingProblem:
    """model: the humanoid at the reference's physics timestep.
    ref: the reference (qpos (N, nq), qvel (N, nv), frame_dt, substeps).
    pool: MjData per rollout thread. ref_states: (N, nstate) physics states
    of the reference frames; ref_states[0] is where every replay starts."""
    model: mujoco.MjModel
    ref: Reference
    pool: DataPool
    ref_states: np.ndarray

    @classmethod
    def build(cls, model: mujoco.MjModel, ref: Reference, threads: int = 1) -> "TrackingProblem":
        return cls(model, ref, DataPool(model, threads),
                   reference_states(model, ref.qpos, ref.qvel, ref.frame_dt))

    @property
    def n_actions(self) -> int:
        """T: actions per clip (frames - 1)."""
        return self.ref.n_frames - 1

    @property
    def nu(self) -> int:
        return self.model.nu

    def rollout(self, actions: np.ndarray, state0: np.ndarray | None = None) -> Rollout:
        """Frame-level rollout of (T, nu) or (B, T, nu) actions from state0
        (default: the reference state of frame 0)."""
        start = self.ref_states[0] if state0 is None else state0
        return simulate_frames(self.model, start, actions, self.ref.substeps, self.pool)
