"""File-level stages of the workflow: each Snakemake rule (and each CLI command)
calls exactly one of these functions. They read and write files; the physics
lives in the other modules.

Stages and files (for clip C and method M):
    import_clip      pybullet_data/.../humanoid3d_C.txt -> motions/C.txt
    prepare          motions/C.txt -> results/C/reference.h5, results/C/diagnostics.csv
    compute_actions  results/C/reference.h5 [+ results/C/actions/INIT.h5]
                     -> results/C/actions/M.h5
    evaluate         results/C/reference.h5 + results/C/actions/M.h5
                     -> results/C/M.h5, results/C/M.csv
    gather           many metric CSVs -> one CSV (comparison.csv, summary.csv)

Every output is written atomically (temporary file in the same folder, then
rename), so a failed job never leaves a file Snakemake would take as finished.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import h5py
import mujoco
import numpy as np
import pandas as pd

from . import __version__
from .clip import DEEPMIMIC_CLIPS, load_clip
from .io import atomic_path, to_attr
from .methods import WARM_STARTED, get_method
from .metrics import METRIC_COLUMNS
from .model import JOINTS, layout, load_model, model_sha256
from .reference import Reference, build_reference
from .sim import make_state, simulate_frames
from .verify import verify

# compute_actions times this many open-loop replays and keeps the median.
REPLAY_TIMINGS = 3


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def clip_name(path) -> str:
    return Path(path).stem


def pybullet_clip_path(name: str) -> Path:
    """Path of DeepMimic clip `name` inside the installed pybullet_data."""
    if name not in DEEPMIMIC_CLIPS:
        raise ValueError(f"{name!r} is not a DeepMimic clip; known clips: {', '.join(DEEPMIMIC_CLIPS)}")
    try:
        import pybullet_data
    except ImportError as e:
        raise FileNotFoundError("pybullet_data is not installed (pip install pybullet); "
                                f"it is needed to import clip {name!r}") from e
    path = Path(pybullet_data.getDataPath()) / "data" / "motions" / f"humanoid3d_{name}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: DeepMimic clip {name!r} missing from pybullet_data")
    return path


def import_clip(name: str, out_path) -> None:
    """Copy DeepMimic clip `name` from pybullet_data to out_path, after
    validating it."""
    src = pybullet_clip_path(name)
    load_clip(src)
    with atomic_path(out_path) as tmp:
        shutil.copyfile(src, tmp)


# ---------------------------------------------------------------- prepare

def prepare(clip_path, out_reference_h5, out_diagnostics_csv, *, ground_correction: bool = True,
            cycles: int = 1, physics_hz: float = 600.0) -> None:
    """Clip file -> reference trajectory (HDF5) and per-frame diagnostics (CSV)."""
    clip = load_clip(clip_path)
    ref, diag = build_reference(clip, ground_correction=ground_correction, cycles=int(cycles),
                                physics_hz=float(physics_hz))
    attrs = {
        "clip": clip_name(clip_path), "clip_path": str(clip_path), "clip_sha256": _sha256(clip_path),
        "loop": clip.loop, "frame_dt": ref.frame_dt, "physics_dt": ref.physics_dt,
        "substeps": ref.substeps, "cycles": ref.cycles, "ground_correction": bool(ground_correction),
        "model_sha256": model_sha256(ref.physics_dt), "mujoco_version": mujoco.__version__,
        "package_version": __version__,
    }
    attrs.update(diag["summary"])
    with atomic_path(out_reference_h5) as tmp, h5py.File(tmp, "w") as f:
        f["qpos"] = ref.qpos
        f["qvel"] = ref.qvel
        for k, v in attrs.items():
            f.attrs[k] = to_attr(v)
    n = ref.n_frames
    table = pd.DataFrame({
        "frame": np.arange(n),
        "time_s": np.arange(n) * ref.frame_dt,
        "lowest_foot_m": diag["lowest_foot_m"],
        "lowest_point_m": diag["lowest_point_m"],
        "lowest_point_corrected_m": diag["lowest_point_corrected_m"],
        "max_joint_speed_rad_s": diag["max_joint_speed_rad_s"],
        "limit_violation_max_rad": diag["limit_violation_rad"].max(axis=1),
    })
    for j, name in enumerate(JOINTS):
        table[f"limit_violation_{name}_rad"] = diag["limit_violation_rad"][:, j]
    with atomic_path(out_diagnostics_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


def load_reference(path) -> tuple[Reference, dict]:
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
        ref = Reference(f["qpos"][()], f["qvel"][()], float(attrs["frame_dt"]),
                        float(attrs["physics_dt"]), int(attrs["substeps"]),
                        float(attrs["ground_shift_m"]), int(attrs["cycles"]))
    return ref, attrs


# ---------------------------------------------------------------- actions

def _params_json(params) -> str:
    return json.dumps(dict(params or {}), sort_keys=True, default=str)


def replay_seconds(model: mujoco.MjModel, ref: Reference, actions: np.ndarray,
                   repeats: int = REPLAY_TIMINGS) -> float:
    """Wall time (s) of one open-loop replay of `actions` (T, nu) from the
    reference state of frame 0 (sim.simulate_frames, one thread, a fresh
    MjData as pool=None makes): the median of `repeats` replays, so one
    hiccup of the machine does not set the unit."""
    state0 = make_state(model, ref.qpos[0], ref.qvel[0], 0.0)
    times = []
    for _ in range(max(1, int(repeats))):
        start = time.perf_counter()
        simulate_frames(model, state0, actions, ref.substeps, None)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def compute_actions(reference_h5, method: str, params: dict, out_h5, *, init_h5=None,
                    threads: int = 1) -> None:
    """Reference -> actions of `method` (HDF5 with /actions, /torques,
    /history, method datasets). `init_h5`: actions file to start from, for
    the warm-started methods.

    Attributes wall_s (s the method took), replay_s (s of one open-loop
    replay of the clip, :func:`replay_seconds`, measured in this job before
    the method runs, on the init actions or zeros) and cost_replays =
    wall_s / replay_s: the method's cost in replays of the clip, which
    compares across clip lengths and machines.

    Attribute reference_sha256 is the sha256 of `reference_h5`. A warm start
    refuses an `init_h5` whose reference_sha256 differs from this
    reference's, or that has none (written before the check existed): such
    a file was left from another clip, length or preparation and must be
    recomputed first (ValueError naming the file)."""
    fn = get_method(method)
    params = dict(params or {})
    ref, ref_attrs = load_reference(reference_h5)
    ref_sha = _sha256(reference_h5)
    model = load_model(ref.physics_dt)
    lay = layout(model)
    init_actions = None
    if method in WARM_STARTED and params.get("init"):
        init = params["init"]
        if init_h5 is None:
            raise ValueError(f"method {method!r} has init: {init} but no init actions file was given")
        with h5py.File(init_h5, "r") as f:
            init_actions = f["actions"][()]
            got = f.attrs.get("method")
            init_ref_sha = f.attrs.get("reference_sha256")
        if got != init:
            raise ValueError(f"{init_h5}: holds actions of {got!r}, expected init method {init!r}")
        redo = (f"recompute it before warm-starting {method!r} from it (run {init!r} on "
                f"{reference_h5} first, or delete the file so the workflow remakes it)")
        if init_ref_sha is None:
            raise ValueError(f"init actions file {init_h5} predates the reference check (it has no "
                             f"reference_sha256), so it may have been computed from a different "
                             f"reference than {reference_h5}: {redo}.")
        if isinstance(init_ref_sha, bytes):
            init_ref_sha = init_ref_sha.decode()
        if init_ref_sha != ref_sha:
            raise ValueError(f"init actions file {init_h5} was computed from a different reference "
                             f"than {reference_h5} (another clip, length or preparation): {redo}.")
        if init_actions.shape != (ref.n_frames - 1, model.nu):
            raise ValueError(f"{init_h5}: actions have shape {init_actions.shape}, "
                             f"expected {(ref.n_frames - 1, model.nu)}")
    timed = init_actions if init_actions is not None else np.zeros((ref.n_frames - 1, model.nu))
    replay_s = replay_seconds(model, ref, timed)
    start = time.perf_counter()
    result = fn(model, ref, params, init_actions, int(threads))
    wall = time.perf_counter() - start
    actions = np.asarray(result.actions, dtype=float)
    if actions.shape != (ref.n_frames - 1, model.nu):
        raise RuntimeError(f"method {method!r} returned actions of shape {actions.shape}, "
                           f"expected {(ref.n_frames - 1, model.nu)}")
    if not np.isfinite(actions).all():
        raise RuntimeError(f"method {method!r} returned non-finite actions for {reference_h5}")
    actions = np.clip(actions, -1.0, 1.0)
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as f:
        f["actions"] = actions
        f["actions"].attrs["units"] = "normalised torque, ctrl in [-1, 1]"
        f["torques"] = actions * lay.torque_limit
        f["torques"].attrs["units"] = "N m"
        _write_history(f, result.history)
        for name, arr in result.datasets.items():
            f[name] = np.asarray(arr)
        f.attrs["method"] = method
        f.attrs["method_params"] = _params_json(params)
        f.attrs["wall_s"] = wall
        f.attrs["replay_s"] = replay_s
        f.attrs["cost_replays"] = wall / replay_s if replay_s > 0 else float("nan")
        f.attrs["threads"] = int(threads)
        f.attrs["clip"] = ref_attrs["clip"]
        for k, v in result.info.items():
            f.attrs[k] = to_attr(v)
        # Warm starts from this file check it against their own reference.
        f.attrs["reference_sha256"] = ref_sha


def _write_history(f: h5py.File, history: list) -> None:
    if not history:
        return
    g = f.create_group("history")
    keys = list(dict.fromkeys(k for row in history for k in row))
    for k in keys:
        g[k] = np.array([h.get(k, np.nan) for h in history], dtype=float)


# ---------------------------------------------------------------- evaluate

def evaluate(reference_h5, actions_h5, out_h5, out_csv) -> None:
    """Replay actions open loop, compute metrics, write the method's result
    file (HDF5) and its metric row (CSV)."""
    ref, ref_attrs = load_reference(reference_h5)
    model = load_model(ref.physics_dt)
    lay = layout(model)
    with h5py.File(actions_h5, "r") as f:
        actions = f["actions"][()]
        act_attrs = dict(f.attrs)
        extra = {}
        f.visititems(lambda name, obj: extra.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) and name not in ("actions", "torques") else None)
    method = act_attrs["method"]
    if actions.shape != (ref.n_frames - 1, model.nu):
        raise ValueError(f"{actions_h5}: actions have shape {actions.shape}, expected "
                         f"{(ref.n_frames - 1, model.nu)} for {reference_h5}")
    ver = verify(model, ref.qpos, ref.qvel, actions, ref.frame_dt, ref.substeps)
    row = {
        "clip": ref_attrs["clip"], "method": method, "status": ver.status,
        "frames": ref.n_frames, "frame_dt": ref.frame_dt, "physics_dt": ref.physics_dt,
        "wall_s": float(act_attrs.get("wall_s", np.nan)),
        "cost_replays": float(act_attrs.get("cost_replays", np.nan)),
    }
    row.update(ver.metrics)
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as f:
        f["actions"] = actions
        f["actions"].attrs["units"] = "normalised torque, ctrl in [-1, 1]"
        f["torques"] = actions * lay.torque_limit
        f["torques"].attrs["units"] = "N m"
        f["reference/qpos"] = ref.qpos
        f["reference/qvel"] = ref.qvel
        f["replay/qpos"] = ver.qpos
        f["replay/qvel"] = ver.qvel
        f["replay/joint_err"] = ver.joint_err
        f["replay/joint_err"].attrs["units"] = "rad"
        f["replay/root_err"] = ver.root_err
        f["replay/root_err"].attrs["units"] = "m"
        f["replay/root_rot_err"] = ver.root_rot_err
        f["replay/root_rot_err"].attrs["units"] = "deg"
        f["replay/reward"] = ver.reward
        f["replay/single_step_err"] = ver.single_step_err
        f["replay/single_step_err"].attrs["units"] = "rad"
        for name, arr in extra.items():
            f[name] = arr
        attrs = {
            "clip": ref_attrs["clip"], "method": method,
            "method_params": act_attrs.get("method_params", "{}"),
            "clip_sha256": ref_attrs["clip_sha256"], "model_sha256": ref_attrs["model_sha256"],
            "frame_dt": ref.frame_dt, "physics_dt": ref.physics_dt, "substeps": ref.substeps,
            "ground_shift_m": ref.ground_shift_m, "cycles": ref.cycles,
            "package_version": __version__, "mujoco_version": mujoco.__version__,
            "actuator_names": list(lay.actuator_names), "joint_names": list(JOINTS),
            "replay_s": float(act_attrs.get("replay_s", np.nan)),
        }
        attrs.update(row)
        for k, v in attrs.items():
            f.attrs[k] = to_attr(v)
    with atomic_path(out_csv) as tmp:
        pd.DataFrame([row], columns=list(METRIC_COLUMNS)).to_csv(tmp, index=False, float_format="%.6g")


# ---------------------------------------------------------------- gains

def compute_gains(reference_h5, actions_h5, out_h5, *, threads: int = 1) -> None:
    """Reference + a method's actions -> the feedback controller around their
    replay (controller.feedback_gains): /gains (T, nu, 2nv), /states (T+1,
    nstate) nominal states, /actions (T, nu)."""
    from .controller import REGULARIZATION, feedback_gains
    from .problem import TrackingProblem
    ref, ref_attrs = load_reference(reference_h5)
    model = load_model(ref.physics_dt)
    with h5py.File(actions_h5, "r") as f:
        actions = f["actions"][()]
        method = f.attrs.get("method", "")
    if actions.shape != (ref.n_frames - 1, model.nu):
        raise ValueError(f"{actions_h5}: actions have shape {actions.shape}, expected "
                         f"{(ref.n_frames - 1, model.nu)} for {reference_h5}")
    start = time.perf_counter()
    states, gains = feedback_gains(TrackingProblem.build(model, ref, threads), actions)
    wall = time.perf_counter() - start
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as f:
        f["gains"] = gains
        f["gains"].attrs["description"] = ("K_t: executed action = clip(actions[t] + gains[t] @ dx, -1, 1), dx the "
                                           "state minus states[t] in MuJoCo's tangent space (qpos difference as "
                                           "mj_differentiatePos, nv; then qvel difference, nv)")
        f["gains"].attrs["units"] = "normalised action per tangent-state unit (rad, m, rad/s, m/s)"
        f["states"] = states
        f["states"].attrs["description"] = "nominal full physics states (mjSTATE_FULLPHYSICS) of the open-loop replay"
        f["actions"] = actions
        f["actions"].attrs["units"] = "normalised torque, ctrl in [-1, 1]"
        for k, v in {"clip": ref_attrs["clip"], "method": method, "regularization": REGULARIZATION,
                     "reference_sha256": _sha256(reference_h5), "wall_s": wall,
                     "mujoco_version": mujoco.__version__, "package_version": __version__}.items():
            f.attrs[k] = to_attr(v)


# ---------------------------------------------------------------- gather

def gather(csv_paths, out_csv) -> None:
    """Concatenate metric rows (CSV files with METRIC_COLUMNS) into one table."""
    frames = []
    for p in csv_paths:
        df = pd.read_csv(p)
        missing = [c for c in METRIC_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{p}: missing metric columns {missing}")
        frames.append(df)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(METRIC_COLUMNS))
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
