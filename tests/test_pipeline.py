"""File stages on a short generated clip: documented datasets, attributes and
CSV columns; atomic writes; gather; errors naming what is wrong."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest

from mocap_refine.clip import ClipError, load_clip
from mocap_refine.generate import write_generated_clip
from mocap_refine.io import atomic_path, to_attr
from mocap_refine import pipeline
from mocap_refine.methods import MethodResult
from mocap_refine.metrics import FALL_REASONS, METRIC_COLUMNS, fall_check, joint_errors, root_errors, root_rot_errors
from mocap_refine.model import JOINTS, TORQUE_LIMIT_NM, layout, load_model
from mocap_refine.pipeline import (
    compute_actions, evaluate, gather, import_clip, load_reference, prepare, pybullet_clip_path,
)

RESULT_DATASETS = ("actions", "torques", "reference/qpos", "reference/qvel", "replay/qpos",
                   "replay/qvel", "replay/joint_err", "replay/root_err", "replay/root_rot_err",
                   "replay/reward")
RESULT_ATTRS = ("clip", "method", "method_params", "clip_sha256", "model_sha256", "frame_dt",
                "physics_dt", "substeps", "package_version", "mujoco_version", "actuator_names",
                "joint_names")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """motions/short.txt (0.5 s generated, 16 frames) through prepare,
    compute_actions('baseline') and evaluate."""
    root = tmp_path_factory.mktemp("pipeline")
    clip = root / "motions" / "short.txt"
    clip.parent.mkdir()
    write_generated_clip(clip, seconds=0.5, frame_dt=1 / 30, seed=3)
    res = root / "results" / "short"
    paths = {
        "clip": clip, "ref": res / "reference.h5", "diag": res / "diagnostics.csv",
        "actions": res / "actions" / "baseline.h5", "h5": res / "baseline.h5", "csv": res / "baseline.csv",
    }
    prepare(clip, paths["ref"], paths["diag"])
    compute_actions(paths["ref"], "baseline", {}, paths["actions"])
    evaluate(paths["ref"], paths["actions"], paths["h5"], paths["csv"])
    return paths


def test_reference_file(run):
    ref, attrs = load_reference(run["ref"])
    assert ref.qpos.shape == (16, 43) and ref.qvel.shape == (16, 34)
    assert attrs["clip"] == "short"
    assert attrs["frame_dt"] == pytest.approx(1 / 30) and attrs["substeps"] == 20
    assert len(attrs["clip_sha256"]) == 64 and len(attrs["model_sha256"]) == 64
    diag = pd.read_csv(run["diag"])
    assert len(diag) == 16
    for col in ("frame", "time_s", "lowest_foot_m", "lowest_point_m", "lowest_point_corrected_m",
                "max_joint_speed_rad_s", "limit_violation_max_rad"):
        assert col in diag.columns, col
    for name in JOINTS:
        assert f"limit_violation_{name}_rad" in diag.columns
    np.testing.assert_allclose(diag["lowest_point_corrected_m"] - diag["lowest_point_m"],
                               attrs["ground_shift_m"], atol=1e-5)


def test_baseline_actions_are_the_pd_formula(run):
    """For a hinge the PD action is plain arithmetic:
    clip((kp (q[t+1] - q[t]) - kd qdot[t]) / limit, -1, 1) with the knee's
    DeepMimic gains kp 500, kd 50 and limit 150 N m."""
    ref, _ = load_reference(run["ref"])
    model = load_model(ref.physics_dt)
    lay = layout(model)
    a = lay.actuator_names.index("right_knee")
    qa, va = lay.qpos_adr[JOINTS.index("right_knee")], lay.dof_adr[JOINTS.index("right_knee")]
    expected = np.clip((500 * np.diff(ref.qpos[:, qa]) - 50 * ref.qvel[:-1, va]) / 150, -1, 1)
    with h5py.File(run["actions"], "r") as f:
        actions, torques = f["actions"][()], f["torques"][()]
        assert f.attrs["method"] == "baseline"
        assert json.loads(f.attrs["method_params"]) == {}
    assert actions.shape == (15, 28)
    np.testing.assert_allclose(actions[:, a], expected, atol=1e-12)
    assert np.abs(actions).max() <= 1.0
    np.testing.assert_allclose(torques, actions * lay.torque_limit)
    assert lay.torque_limit[a] == TORQUE_LIMIT_NM["right_knee"]


def test_result_file_has_documented_contents(run):
    ref, _ = load_reference(run["ref"])
    model = load_model(ref.physics_dt)
    with h5py.File(run["h5"], "r") as f:
        for name in RESULT_DATASETS:
            assert name in f, name
        for name in RESULT_ATTRS + tuple(c for c in METRIC_COLUMNS):
            assert name in f.attrs, name
        assert f["actions"].shape == (15, 28)
        assert f["replay/qpos"].shape == (16, 43) and f["replay/qvel"].shape == (16, 34)
        assert f["replay/joint_err"].shape == (16, 12) and f["replay/root_err"].shape == (16,)
        assert f["replay/reward"].shape == (16,)
        np.testing.assert_array_equal(f["reference/qpos"][()], ref.qpos)
        # Stored errors are the metrics of the stored replay.
        qpos = f["replay/qpos"][()]
        np.testing.assert_allclose(f["replay/joint_err"][()], joint_errors(model, qpos, ref.qpos))
        np.testing.assert_allclose(f["replay/root_err"][()], root_errors(qpos, ref.qpos))
        np.testing.assert_allclose(f["replay/root_rot_err"][()], root_rot_errors(qpos, ref.qpos))
        assert f["replay/root_rot_err"].attrs["units"] == "deg"
        assert f.attrs["root_rot_err50_deg"] == pytest.approx(f["replay/root_rot_err"][1:16].mean())
        # The stored fall and its reason are the fall rule on the stored
        # replay (or the divergence frame when that comes first).
        fall = fall_check(model, qpos, ref.qpos)
        if f.attrs["fall_reason"] != "diverged":
            assert (int(f.attrs["fall_frame"]), f.attrs["fall_reason"]) == (fall.frame, fall.reason)
        assert f.attrs["fall_reason"] in FALL_REASONS + ("",)
        assert (f.attrs["fall_reason"] == "") == (f.attrs["fall_frame"] < 0)
        # Replay starts from the reference state of frame 0.
        np.testing.assert_array_equal(qpos[0], ref.qpos[0])
        assert list(f.attrs["joint_names"]) == list(JOINTS)
        assert len(f.attrs["actuator_names"]) == 28
        attrs = dict(f.attrs)
    row = pd.read_csv(run["csv"])
    assert list(row.columns) == list(METRIC_COLUMNS)
    assert len(row) == 1
    r = row.iloc[0]
    assert r["clip"] == "short" and r["method"] == "baseline"
    assert r["frames"] == 16
    assert r["status"] == "ok" or r["status"].startswith("diverged at frame")
    for col in ("err50_rad", "err_full_rad", "root_drift50_m", "reward_mean", "tracked_fraction"):
        assert r[col] == pytest.approx(attrs[col], rel=1e-5), col
    assert r["fall_frame"] == attrs["fall_frame"]
    # An empty fall_reason (no fall) reads back from the CSV as NaN.
    assert (r["fall_reason"] if isinstance(r["fall_reason"], str) else "") == attrs["fall_reason"]
    assert r["err50_rad"] == pytest.approx(r["err_full_rad"], rel=1e-5)  # T = 15 < 50
    assert r["root_rot_err50_deg"] == pytest.approx(attrs["root_rot_err50_deg"], rel=1e-5)
    with h5py.File(run["actions"], "r") as f:
        cost = f.attrs["cost_replays"]
    assert r["cost_replays"] == pytest.approx(cost, rel=1e-5) == attrs["cost_replays"]


def test_actions_file_has_cost_in_replays(run):
    """cost_replays = wall_s / replay_s, both measured, finite and > 0."""
    with h5py.File(run["actions"], "r") as f:
        wall, replay, cost = (float(f.attrs[k]) for k in ("wall_s", "replay_s", "cost_replays"))
    assert np.isfinite([wall, replay, cost]).all()
    assert wall > 0 and replay > 0 and cost > 0
    assert cost == pytest.approx(wall / replay, rel=1e-12)


class _FakeClock:
    """time.perf_counter returning the given readings in turn."""

    def __init__(self, readings):
        self.readings = list(readings)

    def perf_counter(self):
        return self.readings.pop(0)


def _fake_method(events):
    def fn(model, ref, params, init_actions, threads):
        events.append(("method", None))
        return MethodResult(np.zeros((ref.n_frames - 1, model.nu)))
    return fn


def _fake_simulate(events):
    def simulate(model, state0, actions, substeps, pool=None):
        events.append(("replay", (np.array(state0), np.array(actions), substeps, pool)))
    return simulate


def test_replay_time_is_the_median_of_three_before_the_method(run, tmp_path, monkeypatch):
    """Known clock: replays take 5, 1 and 2 s, the method 10 s: replay_s is
    the median 2, cost_replays 5. The three replays come before the method,
    single thread (pool None), zeros from the reference state of frame 0."""
    events = []
    monkeypatch.setattr(pipeline, "get_method", lambda name: _fake_method(events))
    monkeypatch.setattr(pipeline, "simulate_frames", _fake_simulate(events))
    monkeypatch.setattr(pipeline, "time", _FakeClock([0, 5, 5, 6, 6, 8, 8, 18]))
    out = tmp_path / "actions" / "baseline.h5"
    compute_actions(run["ref"], "baseline", {}, out)
    with h5py.File(out, "r") as f:
        assert f.attrs["wall_s"] == 10.0
        assert f.attrs["replay_s"] == 2.0
        assert f.attrs["cost_replays"] == 5.0
    assert [e[0] for e in events] == ["replay"] * 3 + ["method"]
    ref, _ = load_reference(run["ref"])
    model = load_model(ref.physics_dt)
    for _, (state0, actions, substeps, pool) in events[:3]:
        assert pool is None and substeps == ref.substeps
        np.testing.assert_array_equal(actions, np.zeros((15, model.nu)))
        np.testing.assert_array_equal(state0[1:1 + model.nq], ref.qpos[0])
        np.testing.assert_array_equal(state0[1 + model.nq:1 + model.nq + model.nv], ref.qvel[0])


def test_warm_started_replay_time_uses_the_init_actions(run, tmp_path, monkeypatch):
    init = tmp_path / "init.h5"
    init_actions = np.full((15, 28), 0.25)
    with h5py.File(init, "w") as f:
        f["actions"] = init_actions
        f.attrs["method"] = "baseline"
        f.attrs["reference_sha256"] = pipeline._sha256(run["ref"])
    events = []
    monkeypatch.setattr(pipeline, "get_method", lambda name: _fake_method(events))
    monkeypatch.setattr(pipeline, "simulate_frames", _fake_simulate(events))
    compute_actions(run["ref"], "feedback", {"init": "baseline"}, tmp_path / "feedback.h5", init_h5=init)
    assert [e[0] for e in events] == ["replay"] * 3 + ["method"]
    for _, (_, actions, _, _) in events[:3]:
        np.testing.assert_array_equal(actions, init_actions)


# ----------------------------------------------------------------- warm starts

def _prepared(root, name, seconds, seed):
    """A generated clip `name` prepared under root/results/name; its reference path."""
    clip = root / "motions" / f"{name}.txt"
    write_generated_clip(clip, seconds=seconds, frame_dt=1 / 30, seed=seed)
    ref = root / "results" / name / "reference.h5"
    prepare(clip, ref, ref.parent / "diagnostics.csv")
    return ref


def test_actions_file_records_its_reference(run):
    with h5py.File(run["actions"], "r") as f:
        assert f.attrs["reference_sha256"] == pipeline._sha256(run["ref"])
    assert len(pipeline._sha256(run["ref"])) == 64


def test_fresh_warm_start_chain_works(run, tmp_path):
    """baseline -> feedback and baseline -> gradient on the same reference
    (an init is baseline or invdyn): every warm start accepts its init file,
    and each file records the same reference."""
    out = tmp_path / "actions"
    compute_actions(run["ref"], "baseline", {}, out / "baseline.h5")
    compute_actions(run["ref"], "feedback", {"init": "baseline", "iterations": 1, "windowed": False},
                    out / "feedback.h5", init_h5=out / "baseline.h5")
    compute_actions(run["ref"], "gradient", {"init": "baseline", "iterations": 1, "window_frames": 4,
                                             "commit_frames": 2, "long_window_frames": 0},
                    out / "gradient.h5", init_h5=out / "baseline.h5")
    sha = pipeline._sha256(run["ref"])
    for m in ("baseline", "feedback", "gradient"):
        with h5py.File(out / f"{m}.h5", "r") as f:
            assert f.attrs["method"] == m and f.attrs["reference_sha256"] == sha
            assert f["actions"].shape == (15, 28)


@pytest.mark.parametrize("other", ["another_clip_and_length", "same_length_other_clip"])
def test_stale_init_from_another_reference_is_refused(run, tmp_path, other):
    """An init actions file left from another clip (of another length, or of
    the same length, where the shapes would match and nothing else would
    notice) is refused before the method runs, naming the file."""
    seconds = 0.3 if other == "another_clip_and_length" else 0.5
    other_ref = _prepared(tmp_path, "other", seconds, seed=7)
    stale = tmp_path / "results" / "other" / "actions" / "baseline.h5"
    compute_actions(other_ref, "baseline", {}, stale)
    out = tmp_path / "feedback.h5"
    with pytest.raises(ValueError) as err:
        compute_actions(run["ref"], "feedback", {"init": "baseline"}, out, init_h5=stale)
    msg = str(err.value)
    assert msg.startswith(f"init actions file {stale} was computed from a different reference than {run['ref']}")
    assert "recompute it" in msg and "run 'baseline'" in msg and "snakemake --forcerun" in msg
    assert "\n" not in msg
    assert not out.exists()


def test_init_from_re_prepared_reference_is_refused(run, tmp_path):
    """Same clip, prepared differently (no ground correction): another reference."""
    ref2 = tmp_path / "reference.h5"
    prepare(run["clip"], ref2, tmp_path / "diagnostics.csv", ground_correction=False)
    with pytest.raises(ValueError, match="was computed from a different reference"):
        compute_actions(ref2, "feedback", {"init": "baseline"}, tmp_path / "feedback.h5",
                        init_h5=run["actions"])


def test_init_without_reference_hash_is_refused(run, tmp_path):
    """Actions files written before the check have no reference_sha256."""
    old = tmp_path / "baseline.h5"
    shutil.copyfile(run["actions"], old)
    with h5py.File(old, "a") as f:
        del f.attrs["reference_sha256"]
    out = tmp_path / "feedback.h5"
    with pytest.raises(ValueError) as err:
        compute_actions(run["ref"], "feedback", {"init": "baseline"}, out, init_h5=old)
    msg = str(err.value)
    assert msg.startswith(f"init actions file {old} predates the reference check")
    assert "recompute it" in msg and "run 'baseline'" in msg
    assert not out.exists()


def test_init_of_another_method_still_refused(run, tmp_path):
    with pytest.raises(ValueError, match=r"holds actions of 'baseline', expected init method 'invdyn'"):
        compute_actions(run["ref"], "mpc", {"init": "invdyn"}, tmp_path / "mpc.h5", init_h5=run["actions"])


def test_import_clip_copies_pybullet_file(tmp_path):
    out = tmp_path / "motions" / "walk.txt"
    import_clip("walk", out)
    assert out.read_bytes() == pybullet_clip_path("walk").read_bytes()
    assert load_clip(out).n_frames == 39
    with pytest.raises(ValueError, match="'hop' is not a DeepMimic clip"):
        import_clip("hop", tmp_path / "motions" / "hop.txt")
    assert sorted(p.name for p in out.parent.iterdir()) == ["walk.txt"]


# ----------------------------------------------------------------- failures

def test_prepare_malformed_clip_leaves_nothing(tmp_path):
    clip = tmp_path / "bad.txt"
    clip.write_text(json.dumps({"Loop": "none", "Frames": [[0.1] * 44, [0.1] * 43]}))
    out = tmp_path / "results" / "bad"
    with pytest.raises(ClipError, match=r"bad\.txt: frame 1: has 43 values"):
        prepare(clip, out / "reference.h5", out / "diagnostics.csv")
    assert not out.exists() or list(out.iterdir()) == []


def test_evaluate_wrong_actions_leaves_nothing(run, tmp_path):
    bad = tmp_path / "bad_actions.h5"
    with h5py.File(bad, "w") as f:
        f["actions"] = np.zeros((14, 28))
        f.attrs["method"] = "baseline"
        f.attrs["reference_sha256"] = pipeline._sha256(run["ref"])
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"bad_actions\.h5: actions have shape \(14, 28\), expected \(15, 28\)"):
        evaluate(run["ref"], bad, out / "baseline.h5", out / "baseline.csv")
    assert not out.exists() or list(out.iterdir()) == []


def test_atomic_path_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "d" / "x.csv"
    with atomic_path(target) as tmp:
        (tmp_path / "d" / tmp.split("/")[-1]).write_text("old")
    assert target.read_text() == "old"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("stage failed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["x.csv"]


def test_unknown_method_named(run, tmp_path):
    out = tmp_path / "actions" / "magic.h5"
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        compute_actions(run["ref"], "magic", {}, out)
    assert not out.exists()


# ----------------------------------------------------------------- gather

def _row(clip, method, err):
    row = {c: 0.0 for c in METRIC_COLUMNS}
    row.update(clip=clip, method=method, status="ok", err50_rad=err)
    return row


def test_gather_concatenates_rows(tmp_path, run):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    pd.DataFrame([_row("walk", "baseline", 0.3)], columns=list(METRIC_COLUMNS)).to_csv(a, index=False)
    pd.DataFrame([_row("walk", "mpc", 0.1), _row("run", "mpc", 0.2)],
                 columns=list(METRIC_COLUMNS)).to_csv(b, index=False)
    out = tmp_path / "g" / "comparison.csv"
    gather([a, b, run["csv"]], out)
    table = pd.read_csv(out)
    assert list(table.columns) == list(METRIC_COLUMNS)
    assert table["method"].tolist() == ["baseline", "mpc", "mpc", "baseline"]
    assert table["clip"].tolist() == ["walk", "walk", "run", "short"]
    np.testing.assert_allclose(table["err50_rad"][:3], [0.3, 0.1, 0.2])


def test_gather_rejects_missing_columns(tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame([{"clip": "walk", "method": "baseline"}]).to_csv(bad, index=False)
    out = tmp_path / "summary.csv"
    with pytest.raises(ValueError, match=r"bad\.csv: is not a metric table: it lacks column\(s\) 'status'"):
        gather([bad], out)
    assert not out.exists()


# ----------------------------------------------------------------- io

def test_to_attr():
    assert to_attr(None) == "null"
    assert json.loads(to_attr({"alpha": 0.5, "n": [1, 2]})) == {"alpha": 0.5, "n": [1, 2]}
    assert to_attr(["a", "b"]) == ["a", "b"]  # string lists stay lists
    assert json.loads(to_attr([1.5, 2])) == [1.5, 2]
    v = to_attr(np.int64(7))
    assert v == 7 and type(v) is int
    v = to_attr(np.float32(0.5))
    assert v == 0.5 and type(v) is float
