"""The policy-ready dataset (mocap_refine.dataset), the Gymnasium environment
that replays it (mocap_refine.env) and its Minari export, on two short
generated clips with cheap actions: gen_a's (invdyn without the frame
solve) fall at frame 5, gen_b's (track, small budget) never fall."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from mocap_refine import pipeline
from mocap_refine.controller import feedback_action
from mocap_refine.dataset import ClipSource, DatasetSettings, build_dataset, model_from_mjcf
from mocap_refine.generate import write_generated_clip
from mocap_refine.metrics import fall_check, imitation_reward
from mocap_refine.model import layout
from mocap_refine.sim import make_state, simulate_frames, split_state

REPO = Path(__file__).resolve().parents[1]
CLIPS = ("gen_a", "gen_b")
SETTINGS = DatasetSettings(noisy_rollouts=3, body_positions=True, validation_clips=("gen_b",))


METHODS = {"gen_a": ("invdyn", {"frame_solve": False}),
           "gen_b": ("track", {"horizon_s": 0.2, "commit_s": 0.1, "iterations": 2})}


def _sources(root: Path) -> list[ClipSource]:
    sources = []
    for seed, clip in enumerate(CLIPS):
        d = root / clip
        write_generated_clip(d / "clip.txt", seconds=0.5, frame_dt=1 / 30, seed=seed)
        pipeline.prepare(d / "clip.txt", d / "reference.h5", d / "diagnostics.csv")
        pipeline.compute_actions(d / "reference.h5", *METHODS[clip], d / "actions.h5")
        pipeline.compute_gains(d / "reference.h5", d / "actions.h5", d / "gains.h5")
        sources.append(ClipSource(clip, d / "reference.h5", d / "gains.h5"))
    return sources


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    sources = _sources(root)
    path = root / "mixed.h5"
    build_dataset(sources, path, SETTINGS, method="mixed")
    return sources, path


def episodes(f: h5py.File):
    """(clip, group) of every episode: clean first, then the noisy ones."""
    for clip in f["clips"]:
        g = f["clips"][clip]
        yield clip, g
        for i in g["noisy"]:
            yield clip, g["noisy"][i]


def clip_model(f: h5py.File, clip: str):
    return model_from_mjcf(f.attrs["mjcf"], f["clips"][clip].attrs["physics_dt"])


def test_same_inputs_same_bytes(built, tmp_path):
    sources, path = built
    again = tmp_path / "again.h5"
    build_dataset(sources, again, SETTINGS, method="mixed")
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(path.read_bytes()).digest()


def test_every_dataset_has_units_and_description_and_no_nan(built):
    _, path = built
    seen = []

    def check(name, obj):
        if isinstance(obj, h5py.Dataset):
            seen.append(name)
            assert obj.attrs.get("units") and obj.attrs.get("description"), name
            if obj.dtype.kind == "f":
                assert np.isfinite(obj[()]).all(), name

    with h5py.File(path) as f:
        f.visititems(check)
        obs_dim = len(f["columns/observations"])
        for clip, g in episodes(f):
            T = g["actions"].shape[0]
            assert g["observations"].shape == (T + 1, obs_dim)
            assert g["clean_actions"].shape == (T, 28) and g["rewards"].shape == (T,) and g["valid"].shape == (T,)
    assert "clips/gen_a/noisy/2/clean_actions" in seen and "stats/observations_std" in seen


def test_columns_name_every_slice(built):
    _, path = built
    with h5py.File(path) as f:
        names = [n.decode() for n in f["columns/observations"][()]]
        model = clip_model(f, "gen_a")
        assert [n.decode() for n in f["columns/actions"][()]] == list(layout(model).actuator_names)
        assert np.array_equal(f["columns/action_torque_limit"][()], layout(model).torque_limit)
        obs = f["clips/gen_a/observations"][()]
    # qpos, qvel, phase, 15 body positions
    assert len(names) == 43 + 34 + 1 + 3 * 15 == obs.shape[1]
    assert names[:4] == ["qpos_root_x", "qpos_root_y", "qpos_root_z", "qpos_root_qw"]
    assert names[43] == "qvel_root_vx" and names[77] == "phase" and names[78] == "pos_root_x"
    assert obs[0, 77] == 0.0 and obs[-1, 77] == 1.0


def test_every_stored_row_is_the_next_state_of_the_simulator(built):
    """From the stored model alone: qpos/qvel of observations[t] plus
    actions[t] held for one frame gives observations[t+1] bit for bit, also
    after a fall."""
    _, path = built
    with h5py.File(path) as f:
        for clip, g in episodes(f):
            model = clip_model(f, clip)
            substeps = int(f["clips"][clip].attrs["substeps"])
            obs, actions = g["observations"][()], g["actions"][()]
            states = np.stack([make_state(model, o[:43], o[43:77]) for o in obs[:-1]])
            nxt = simulate_frames(model, states, actions[:, None, :], substeps).states[:, 1]
            _, q, v = split_state(model, nxt)
            assert np.array_equal(q, obs[1:, :43]) and np.array_equal(v, obs[1:, 43:77]), g.name


def test_clean_labels_are_the_controllers_and_the_noise_is_seeded(built):
    sources, path = built
    with h5py.File(path) as f, h5py.File(sources[0].gains_h5) as gf:
        gains, nominal, nominal_actions = gf["gains"][()], gf["states"][()], gf["actions"][()]
        clean = f["clips/gen_a"]
        assert np.array_equal(clean["actions"][()], nominal_actions)
        assert np.array_equal(clean["clean_actions"][()], nominal_actions)
        model = clip_model(f, "gen_a")
        starts = []
        for i in f["clips/gen_a/noisy"]:
            g = f["clips/gen_a/noisy"][i]
            rng = np.random.default_rng(json.loads(g.attrs["noise_seed"]))
            start = int(rng.integers(0, int(clean.attrs["valid_transitions"])))
            assert start == g.attrs["start_frame"]
            starts.append(start)
            noise = SETTINGS.action_noise * rng.standard_normal((nominal_actions.shape[0] - start, 28))
            obs, executed, labels = g["observations"][()], g["actions"][()], g["clean_actions"][()]
            n = executed.shape[0]
            assert np.array_equal(executed, np.clip(labels + noise[:n], -1, 1))
            for t in range(n):
                state = make_state(model, obs[t, :43], obs[t, 43:77])
                want = feedback_action(model, state, nominal[start + t], nominal_actions[start + t],
                                       gains[start + t])
                assert np.array_equal(labels[t], want)
            assert not np.array_equal(executed, labels)
    assert len(set(starts)) > 1, "start frames are random"


def test_valid_and_rewards_follow_the_projects_rules(built):
    """The clean episode against metrics.fall_check on the full replay
    (the evaluation's fall rule) and the batched DeepMimic reward."""
    sources, path = built
    with h5py.File(path) as f:
        for clip, src in zip(CLIPS, sources):
            g = f["clips"][clip]
            ref, _ = pipeline.load_reference(src.reference_h5)
            model = clip_model(f, clip)
            obs = g["observations"][()]
            q, v = obs[:, :43], obs[:, 43:77]
            fall = fall_check(model, q, ref.qpos)
            assert g.attrs["fall_frame"] == fall.frame and g.attrs["fall_reason"] == fall.reason
            frames = g["frames"][()]
            want_valid = np.ones(len(frames) - 1, bool) if fall.frame < 0 else frames[1:] < fall.frame
            assert np.array_equal(g["valid"][()], want_valid)
            want = imitation_reward(model, q[1:], v[1:], ref.qpos[1:], ref.qvel[1:])
            assert np.allclose(g["rewards"][()], want, rtol=0, atol=1e-12)
        assert f["clips/gen_a"].attrs["fall_frame"] == 5 and f["clips/gen_b"].attrs["fall_frame"] == -1


def test_split_and_statistics(built):
    _, path = built
    with h5py.File(path) as f:
        assert [c.decode() for c in f["split/train"][()]] == ["gen_a"]
        assert [c.decode() for c in f["split/validation"][()]] == ["gen_b"]
        assert f["clips/gen_b"].attrs["split"] == "validation"
        groups = [g for clip, g in episodes(f) if clip == "gen_a"]
        rows = np.concatenate([g["observations"][()][:-1][g["valid"][()]] for g in groups])
        acts = np.concatenate([g["clean_actions"][()][g["valid"][()]] for g in groups])
        assert np.allclose(f["stats/observations_mean"][()], rows.mean(axis=0), rtol=0, atol=1e-12)
        assert np.allclose(f["stats/clean_actions_std"][()], acts.std(axis=0), rtol=0, atol=1e-12)
        assert json.loads(f.attrs["settings"])["noisy_rollouts"] == 3
        assert f.attrs["mujoco_version"] and f.attrs["mjcf"].startswith("<mujoco")


def test_environment_replays_every_episode_bit_for_bit(built):
    import gymnasium

    import mocap_refine  # noqa: F401
    _, path = built
    with h5py.File(path) as f:
        for clip, g in episodes(f):
            env = gymnasium.make("mocap_refine/Tracking-v0", dataset=str(path), clip=clip)
            obs, info = env.reset(seed=0, options={"frame": int(g.attrs["start_frame"])})
            stored, actions = g["observations"][()], g["actions"][()]
            rewards, valid = g["rewards"][()], g["valid"][()]
            assert np.array_equal(obs, stored[0])
            for t, a in enumerate(actions):
                obs, r, terminated, truncated, info = env.step(a)
                assert np.array_equal(obs, stored[t + 1]) and r == rewards[t], (g.name, t)
                assert terminated == (not valid[t]), (g.name, t)
                if terminated or truncated:
                    break
            if valid.all():
                assert truncated and t == len(actions) - 1
            else:
                assert info["fall_reason"] == g.attrs["fall_reason"] and info["frame"] == g.attrs["fall_frame"]


def test_environment_passes_gymnasiums_checker_and_resets_where_asked(built):
    import gymnasium
    from gymnasium.utils.env_checker import check_env

    import mocap_refine  # noqa: F401
    _, path = built
    env = gymnasium.make("mocap_refine/Tracking-v0", dataset=str(path), clip="gen_b")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")  # unbounded positions and velocities
        check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(options={"frame": 5})
    with h5py.File(path) as f:
        assert np.array_equal(obs[:43], f["clips/gen_b/reference/qpos"][5]) and info["frame"] == 5
    first = env.reset(seed=3)[1]["frame"]
    assert env.reset(seed=3)[1]["frame"] == first
    with pytest.raises(ValueError, match="start frame 15 outside"):
        env.reset(options={"frame": 15})


def test_registered_in_a_fresh_process(built):
    _, path = built
    code = ("import gymnasium\n"
            f"env = gymnasium.make('mocap_refine:mocap_refine/Tracking-v0', dataset={str(path)!r}, clip='gen_a')\n"
            "import mocap_refine\n"
            f"env2 = gymnasium.make('mocap_refine/Tracking-v0', dataset={str(path)!r}, clip='gen_a')\n"
            "print(env.reset(options={'frame': 0})[0].shape, env2.unwrapped.n_frames)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "(123,) 16"


def test_minari_export_replays_in_the_real_environment(built, tmp_path, monkeypatch):
    import minari

    from mocap_refine.minari_export import export_minari
    _, path = built
    out = tmp_path / "minari"
    ids = export_minari(path, out)
    assert ids == ["mocap_refine/gen_a/mixed-v0", "mocap_refine/gen_b/mixed-v0"]
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(out))
    data = minari.load_dataset(ids[0])
    assert data.total_episodes == 1 + SETTINGS.noisy_rollouts
    with h5py.File(path) as f:
        clean = f["clips/gen_a"]
        ep = next(iter(data.iterate_episodes()))
        n = int(clean.attrs["valid_transitions"]) + 1  # up to the falling transition
        assert np.array_equal(ep.observations, clean["observations"][: n + 1])
        assert np.array_equal(ep.actions, clean["actions"][:n]) and ep.terminations[-1]
    env = data.recover_environment()
    assert env.unwrapped.clip == "gen_a"
    with pytest.raises(FileExistsError):
        export_minari(path, out)


def test_gains_of_another_reference_are_refused(built, tmp_path):
    sources, _ = built
    mixed = [ClipSource("gen_a", sources[0].reference_h5, sources[1].gains_h5)]
    with pytest.raises(ValueError, match="computed for another reference"):
        build_dataset(mixed, tmp_path / "x.h5", SETTINGS)
    assert not (tmp_path / "x.h5").exists()


def test_config_split_and_checks():
    from mocap_refine import config as mr_config
    cfg = {"clips": ["walk", "jump"], "methods": ["track"], "dataset": {"validation_clips": ["jump"]}}
    assert mr_config.dataset_split(cfg) == (["walk"], ["jump"])
    cfg["clips"] = ["jump"]
    with pytest.raises(mr_config.ConfigError, match="no clip is left to train on"):
        mr_config.dataset_split(cfg)
    cfg = {"clips": ["walk"], "methods": ["track"], "dataset": {"validation_clips": ["jmup"], "noisy_rollouts": -1}}
    with pytest.raises(mr_config.ConfigError) as err:
        mr_config.check_config(cfg, motions_dir=REPO / "motions")
    assert "dataset.noisy_rollouts: -1 is below the minimum 0" in str(err.value)
    # A misspelt validation clip is refused when a dataset is asked for;
    # a run on fewer clips (--config clips=...) is not refused for it.
    cfg["dataset"]["noisy_rollouts"] = 1
    mr_config.check_config(cfg, motions_dir=REPO / "motions")
    with pytest.raises(mr_config.ConfigError, match="'jmup' is not among the configured clips"):
        mr_config.dataset_split(cfg)


def test_bc_check_runs_closed_loop_and_its_open_loop_row_is_the_clean_episode(built, tmp_path):
    """benchmarks/bc_check.py on gen_a (a tiny network): the open-loop row
    without noise is the dataset's clean episode (tracked up to its fall at
    frame 5: 4 transitions; err50 over frames 1 .. 5 from the stored rows);
    every figure is finite; the same command writes the same CSV."""
    import pandas as pd

    from mocap_refine.metrics import joint_errors
    _, path = built
    outs = []
    for run in ("a", "b"):
        csv, md = tmp_path / f"{run}.csv", tmp_path / f"{run}.md"
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "bc_check.py"), str(path), "--clip", "gen_a",
                        "--seeds", "0", "--hidden", "16", "--epochs", "3", "--noise-episodes", "2",
                        "--csv-out", str(csv), "--table-out", str(md)],
                       check=True, capture_output=True, text=True, timeout=300)
        outs.append(csv.read_bytes())
    assert outs[0] == outs[1]
    table = pd.read_csv(tmp_path / "a.csv")
    assert list(table["policy"]) == ["open loop", "open loop", "BC", "BC"]
    assert list(table["noise_std"]) == [0.0, SETTINGS.action_noise] * 2
    assert np.isfinite(table.select_dtypes("number").drop(columns="train_seed")).all().all()
    row = table.iloc[0]
    with h5py.File(path) as f:
        g = f["clips/gen_a"]
        assert row["frames_tracked_mean"] == g.attrs["valid_transitions"] == 4
        assert row["clip_transitions"] == g["actions"].shape[0] == 15
        err = joint_errors(clip_model(f, "gen_a"), g["observations"][1:6, :43], g["reference/qpos"][1:6]).mean()
    assert row["err50_rad"] == pytest.approx(err, rel=1e-5)  # the CSV keeps 6 digits
    text = (tmp_path / "a.md").read_text()
    assert text.startswith("Generated by `python benchmarks/bc_check.py ") and "| open loop" in text
