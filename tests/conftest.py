"""Shared fixtures for the foundation unit tests.

Generated trajectories are cheap (about 0.05 s each) but several test modules
use the same one, so it is built once per session. Tests must not modify the
arrays they get (they are shared); copy first.
"""

from __future__ import annotations

import numpy as np
import pytest

from mocap_refine.generate import generate_trajectory, write_generated_clip
from mocap_refine.model import load_model

# One generated second at 30 Hz: 31 frames, 30 actions, with ground contact
# (the humanoid falls during the second). Seed fixed: deterministic data.
GEN_SECONDS = 1.0
GEN_FRAME_DT = 1.0 / 30.0
GEN_SEED = 0


@pytest.fixture(scope="session")
def gen():
    """Generated(qpos (31, 43), qvel (31, 34), actions (30, 28), ...)."""
    g = generate_trajectory(seconds=GEN_SECONDS, frame_dt=GEN_FRAME_DT, seed=GEN_SEED)
    for a in (g.qpos, g.qvel, g.actions):
        a.setflags(write=False)
    return g


@pytest.fixture(scope="session")
def gen_model(gen):
    """The humanoid with the generator's physics timestep."""
    return load_model(gen.physics_dt)


@pytest.fixture(scope="session")
def gen_clip(tmp_path_factory, gen):
    """The generated trajectory written as a DeepMimic clip file (Y-up)."""
    path = tmp_path_factory.mktemp("gen_clip") / "gen.txt"
    g2 = write_generated_clip(path, seconds=GEN_SECONDS, frame_dt=GEN_FRAME_DT, seed=GEN_SEED)
    # write_generated_clip regenerates; it must be the same trajectory.
    assert np.array_equal(g2.qpos, gen.qpos)
    return path


@pytest.fixture(scope="session")
def model():
    """The humanoid at the default 600 Hz physics rate."""
    return load_model()
