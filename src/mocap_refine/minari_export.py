"""Export a dataset (mocap_refine.dataset) to Minari, the offline-RL standard.

One Minari dataset per clip, id ``mocap_refine/{clip}/{method}-v0`` (Minari's
``namespace/env_name/dataset_name-version``; the environment is the clip),
with the real environment ``mocap_refine/Tracking-v0`` as its env spec: every
episode (clean replay and noisy rollouts) is replayed in that environment from
its start frame with the stored executed actions, and what the environment
returns (observations, rewards, terminations at the fall rule, truncation at
the clip's end) is what Minari stores; the replay must give the HDF5's
observations bit for bit, or the export stops. An episode the dataset cut
before a diverging transition ends truncated. Minari has one action per step,
so the clean labels stay in the HDF5 file; step infos carry the clip frame.
``recover_environment()`` rebuilds the environment from the spec, which names
the HDF5 file by its absolute path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import h5py
import mujoco
import numpy as np

from . import __version__

MINARI_NAMESPACE = "mocap_refine"


@contextmanager
def _datasets_root(path: Path):
    """Minari writes under $MINARI_DATASETS_PATH; point it at `path` meanwhile."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def episode_groups(clip_group: h5py.Group) -> list[h5py.Group]:
    """The clip's clean episode, then its noisy rollouts in index order."""
    noisy = clip_group["noisy"]
    return [clip_group] + [noisy[k] for k in sorted(noisy, key=int)]


def replay_episode(env, group: h5py.Group):
    """Replay one stored episode in `env` (a TrackingEnv, possibly wrapped):
    returns a minari EpisodeBuffer of what the environment returned.
    Raises RuntimeError if the environment's observations differ from the
    stored ones (the dataset and the environment must agree bit for bit)."""
    from minari.data_collector import EpisodeBuffer
    obs_stored = group["observations"][()]
    actions = group["actions"][()]
    start = int(group.attrs["start_frame"])
    obs, info = env.reset(options={"frame": start})
    observations, rewards, terms, truncs, frames = [obs], [], [], [], [info["frame"]]
    term = trunc = False
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        observations.append(obs)
        rewards.append(r)
        terms.append(term)
        truncs.append(trunc)
        frames.append(info["frame"])
        if term or trunc:
            break
    n = len(rewards)
    if not np.array_equal(np.array(observations), obs_stored[:n + 1]):
        raise RuntimeError(f"{group.file.filename}:{group.name}: the environment does not replay the "
                           f"stored observations bit for bit")
    if not (term or trunc):
        truncs[-1] = True  # the dataset cut the rollout before a diverging transition
    return EpisodeBuffer(observations=np.array(observations), actions=actions[:n],
                         rewards=np.array(rewards), terminations=np.array(terms),
                         truncations=np.array(truncs), infos={"frame": np.array(frames, dtype=np.int64)})


def export_minari(dataset_h5, out_dir, clips: list[str] | None = None) -> list[str]:
    """Write one Minari dataset per clip of `dataset_h5` into the new folder
    `out_dir` (a Minari datasets root: set MINARI_DATASETS_PATH to it to
    load them). Written in a temporary folder beside it and renamed at the
    end, so a failed export leaves nothing. Returns the dataset ids."""
    dataset_h5 = Path(dataset_h5).resolve()
    out_dir = Path(out_dir).resolve()
    if out_dir.exists():
        raise FileExistsError(f"{out_dir}: the Minari export's folder exists already; delete it first")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        ids = _export(dataset_h5, tmp, clips)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ids


def _export(dataset_h5: Path, out_dir: Path, clips) -> list[str]:
    import gymnasium as gym
    import minari

    import mocap_refine  # noqa: F401  (registers the environment)
    from .env import ENV_ID
    ids = []
    with h5py.File(dataset_h5, "r") as f:
        method = f.attrs["method"]
        names = list(f["clips"]) if clips is None else list(clips)
        for clip in names:
            env = gym.make(ENV_ID, dataset=str(dataset_h5), clip=clip)
            buffers = [replay_episode(env, g) for g in episode_groups(f["clips"][clip])]
            dataset_id = f"{MINARI_NAMESPACE}/{clip}/{method}-v0"
            with _datasets_root(out_dir):
                minari.create_dataset_from_buffers(
                    dataset_id=dataset_id, buffer=buffers, env=env, eval_env=env,
                    algorithm_name=f"{method} actions + TVLQR feedback controller (mocap_refine.controller)",
                    author="mocap-refine", author_email="none",
                    code_permalink="https://pypi.org/project/mocap-refine/ (not published)",
                    description=(f"Clip {clip}: clean replay of {method}'s actions and noisy controller rollouts "
                                 f"from {dataset_h5.name}; clean action labels are in that HDF5 file."),
                    data_format="hdf5",
                    requirements=[f"mujoco=={mujoco.__version__}", f"mocap-refine=={__version__}"],
                )
            env.close()
            ids.append(dataset_id)
    return ids
