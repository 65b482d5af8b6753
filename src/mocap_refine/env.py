"""Gymnasium environment ``mocap_refine/Tracking-v0``: track one clip of a dataset.

    import gymnasium, mocap_refine   # importing the package registers the id
    env = gymnasium.make("mocap_refine/Tracking-v0", dataset="results/dataset/track.h5", clip="walk")
    # or, without importing mocap_refine first:
    env = gymnasium.make("mocap_refine:mocap_refine/Tracking-v0", dataset=..., clip=...)

Built from the dataset alone (:mod:`mocap_refine.dataset`): the humanoid is
compiled from the stored MJCF with the clip's physics timestep, the reference
is the stored one. ``reset(seed=..., options={"frame": k})`` starts at the
reference state of frame k (reference state initialisation; without a frame,
one drawn uniformly from 0 .. frames - 2 with the seeded generator). A step
holds one action (normalised torque in [-1, 1], clipped) for one mocap frame
in the one simulator (sim.simulate_frames); the reward is DeepMimic's
imitation reward at the new frame; the episode terminates at the project's
fall rule (metrics.fall_flags) or when the physics diverges, and is truncated
at the clip's last frame. Observations are the dataset's columns, so the
dataset's episodes replay here bit for bit.
"""

from __future__ import annotations

import json

import gymnasium as gym
import h5py
import numpy as np

from .dataset import FORMAT, model_from_mjcf, observe, score_rows
from .metrics import FALL_REASONS, reference_contact_near
from .sim import DataPool, make_state, simulate_frames, split_state

ENV_ID = "mocap_refine/Tracking-v0"


class TrackingEnv(gym.Env):
    """One clip of a dataset file (see the module docstring)."""

    metadata = {"render_modes": []}

    def __init__(self, dataset: str, clip: str, render_mode: str | None = None):
        if render_mode is not None:
            raise ValueError(f"{ENV_ID}: no render modes (got {render_mode!r})")
        with h5py.File(dataset, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ValueError(f"{dataset}: not a mocap_refine dataset (attribute format is "
                                 f"{f.attrs.get('format')!r}, expected {FORMAT!r})")
            if clip not in f["clips"]:
                raise ValueError(f"{dataset}: no clip {clip!r}; clips: {', '.join(f['clips'])}")
            g = f["clips"][clip]
            self.n_frames = int(g.attrs["frames"])
            self.frame_dt = float(g.attrs["frame_dt"])
            self.substeps = int(g.attrs["substeps"])
            self.model = model_from_mjcf(f.attrs["mjcf"], float(g.attrs["physics_dt"]))
            self.ref_qpos = g["reference/qpos"][()]
            self.ref_qvel = g["reference/qvel"][()]
            self.body_positions = bool(json.loads(f.attrs["settings"])["body_positions"])
            self.observation_names = [n.decode() for n in f["columns/observations"][()]]
        self.clip = clip
        self._pool = DataPool(self.model, 1)
        self._near = reference_contact_near(self.model, self.ref_qpos)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (len(self.observation_names),), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.model.nu,), np.float64)
        self.frame = 0
        self.state = None

    def _obs(self) -> np.ndarray:
        return observe(self.model, self.state[None], np.array([self.frame]), self.n_frames,
                       self.body_positions)[0]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        frame = (options or {}).get("frame")
        if frame is None:
            frame = int(self.np_random.integers(0, self.n_frames - 1))
        frame = int(frame)
        if not 0 <= frame < self.n_frames - 1:
            raise ValueError(f"{ENV_ID}: start frame {frame} outside 0 .. {self.n_frames - 2} "
                             f"(clip {self.clip!r} has {self.n_frames} frames)")
        self.frame = frame
        self.state = make_state(self.model, self.ref_qpos[frame], self.ref_qvel[frame], frame * self.frame_dt)
        return self._obs(), {"frame": frame}

    def step(self, action):
        if self.state is None or self.frame >= self.n_frames - 1:
            raise RuntimeError(f"{ENV_ID}: the episode has ended (or never started); call reset()")
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        rollout = simulate_frames(self.model, self.state, a[None], self.substeps, self._pool)
        self.frame += 1
        info = {"frame": self.frame, "fall_reason": ""}
        if rollout.diverged_frame[0] >= 0:
            # The physics blew up inside the frame; the state stays the last valid one.
            info["fall_reason"] = "diverged"
            return self._obs(), 0.0, True, False, info
        self.state = rollout.states[0, 1]
        _, q, v = split_state(self.model, self.state[None])
        k = slice(self.frame, self.frame + 1)
        rewards, flags = score_rows(self.model, q, v, self.ref_qpos[k], self.ref_qvel[k], self._near[k])
        terminated = bool(flags[0].any())
        if terminated:
            info["fall_reason"] = FALL_REASONS[int(np.argmax(flags[0]))]
        truncated = not terminated and self.frame >= self.n_frames - 1
        return self._obs(), float(rewards[0]), terminated, truncated, info
