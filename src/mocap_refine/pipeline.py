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

import functools
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

import h5py
import mujoco
import numpy as np
import pandas as pd

from . import __version__
from .clip import DEEPMIMIC_CLIPS, ClipError, load_clip
from .io import FileProblem, H5Contents, atomic_path, read_csv, read_h5, remake_hint, write_csv, write_h5
from .methods import WARM_STARTED, get_method
from .metrics import METRIC_COLUMNS
from .model import JOINTS, layout, load_model, model_sha256
from .reference import Reference, build_reference
from .sim import make_state, simulate_frames
from .verify import verify

log = logging.getLogger(__name__)

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
    for name, arr in (("qpos", ref.qpos), ("qvel", ref.qvel)):
        if not np.isfinite(arr).all():
            raise ClipError(f"{clip_path}: the converted clip's {name} is not finite (values too large "
                            "for the simulation); the clip is corrupt")
    write_h5(out_reference_h5, {"qpos": ref.qpos, "qvel": ref.qvel}, attrs)
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
    write_csv(out_diagnostics_csv, table)


# Attributes every reference file has (read by load_reference and evaluate).
REFERENCE_ATTRS = ("clip", "clip_sha256", "model_sha256", "frame_dt", "physics_dt", "substeps",
                   "ground_shift_m", "cycles")


@functools.cache
def _model_sizes() -> tuple[int, int, int]:
    """(nq, nv, nu) of the humanoid (the same at every timestep)."""
    model = load_model()
    return model.nq, model.nv, model.nu


def load_reference(path) -> tuple[Reference, dict]:
    """A reference file (prepare's output) -> (Reference, attributes);
    FileProblem naming the file when it cannot be used."""
    nq, nv, _ = _model_sizes()
    c = read_h5(path, "reference file", ("qpos", "qvel"), REFERENCE_ATTRS,
                shapes={"qpos": (None, nq), "qvel": (None, nv)})
    qpos, qvel, attrs = c["qpos"], c["qvel"], c.attrs
    n = qpos.shape[0]
    hint = remake_hint(path)
    if n < 2 or qvel.shape[0] != n:
        raise FileProblem(f"{path}: holds {n} qpos and {qvel.shape[0]} qvel frames, expected the same "
                          f"number, at least 2; {hint}.")
    frame_dt, physics_dt, substeps = attrs["frame_dt"], attrs["physics_dt"], attrs["substeps"]
    if not (isinstance(substeps, int) and substeps >= 1 and frame_dt > 0
            and abs(physics_dt * substeps - frame_dt) <= 1e-9 * frame_dt):
        raise FileProblem(f"{path}: timing attributes are inconsistent (frame_dt {frame_dt}, physics_dt "
                          f"{physics_dt}, substeps {substeps}); {hint}.")
    ref = Reference(qpos, qvel, float(frame_dt), float(physics_dt), int(substeps),
                    float(attrs["ground_shift_m"]), int(attrs["cycles"]))
    return ref, attrs


def read_actions(actions_h5, reference_h5, ref: Reference, *, role: str = "actions file",
                 extra: bool = False, redo: str = "") -> H5Contents:
    """A method's actions file, checked against the reference it is used with:
    /actions of shape (T, nu) in [-1, 1], attribute `method`, and a
    reference_sha256 equal to `reference_h5`'s (FileProblem naming the file
    otherwise: it was left from another clip, length or preparation).
    extra: also read the method's other datasets (history, invdyn/...)."""
    _, _, nu = _model_sizes()
    c = read_h5(actions_h5, "actions file", ("actions",), ("method",), shapes={"actions": (None, nu)},
                extra=extra)
    method = c.attrs["method"]
    redo = redo or (f"recompute it (run {method!r} on {reference_h5}, or remake it with "
                    f"snakemake --forcerun {actions_h5})")
    sha = c.attrs.get("reference_sha256")
    if sha is None:
        raise FileProblem(f"{role} {actions_h5} predates the reference check (it has no "
                          f"reference_sha256), so it may have been computed from a different "
                          f"reference than {reference_h5}: {redo}.")
    if sha != _sha256(reference_h5):
        raise FileProblem(f"{role} {actions_h5} was computed from a different reference "
                          f"than {reference_h5} (another clip, length or preparation): {redo}.")
    actions = c["actions"]
    if actions.shape[0] != ref.n_frames - 1:
        raise FileProblem(f"{actions_h5}: actions have shape {actions.shape}, expected "
                          f"{(ref.n_frames - 1, nu)} for {reference_h5}: {redo}.")
    if np.abs(actions).max(initial=0.0) > 1.0:
        i = np.unravel_index(int(np.argmax(np.abs(actions))), actions.shape)
        raise FileProblem(f"{actions_h5}: action {actions[i]:.6g} at frame {i[0]}, actuator {i[1]} is outside "
                          f"[-1, 1], so the file was not written by mocap-refine: {redo}.")
    return c


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
        redo = (f"recompute it before warm-starting {method!r} from it (run {init!r} on "
                f"{reference_h5} first, or remake it with snakemake --forcerun {init_h5})")
        c = read_actions(init_h5, reference_h5, ref, role="init actions file", redo=redo)
        if c.attrs["method"] != init:
            raise FileProblem(f"{init_h5}: holds actions of {c.attrs['method']!r}, expected init method "
                              f"{init!r}: {redo}.")
        init_actions = c["actions"]
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
    data = {"actions": actions, "torques": actions * lay.torque_limit}
    data_attrs = {"actions": {"units": ACTION_UNITS}, "torques": {"units": "N m"}}
    hist, hist_attrs = history_datasets(result.history)
    data.update(hist)
    data_attrs.update(hist_attrs)
    data.update({name: np.asarray(arr) for name, arr in result.datasets.items()})
    # A clock finer than a replay: replay_s > 0; the floor only guards the ratio.
    replay_s = max(replay_s, 1e-9)
    attrs = {"method": method, "method_params": _params_json(params), "wall_s": wall, "replay_s": replay_s,
             "cost_replays": wall / replay_s, "threads": int(threads), "clip": ref_attrs["clip"]}
    # A method's summary numbers from a diverged replay can be Inf or NaN:
    # they are left out (named in attribute nonfinite_info, and logged)
    # rather than lose the job's actions to write_h5's refusal.
    dropped = sorted(k for k, v in result.info.items()
                     if isinstance(v, (float, np.floating)) and not np.isfinite(v))
    attrs.update({k: v for k, v in result.info.items() if k not in dropped})
    if dropped:
        attrs["nonfinite_info"] = ", ".join(dropped)
        log.warning("%s: %s of method %r not finite (a diverged replay); left out of %s",
                    reference_h5, ", ".join(dropped), method, out_h5)
    # Warm starts, evaluate and gains check this file against their own reference.
    attrs["reference_sha256"] = ref_sha
    write_h5(out_h5, data, attrs, data_attrs)


ACTION_UNITS = "normalised torque, ctrl in [-1, 1]"


def history_datasets(history: list) -> tuple[dict, dict]:
    """A method's history rows (list of dicts) -> datasets history/{column}
    and their attributes. A column every row has, finite, is one value per
    row; a column some rows lack (or hold NaN/Inf in) stores only the rows
    that have a finite value, listed in its attribute `rows` (row indices):
    no NaN is ever written. :func:`history_table` reads them back."""
    data, attrs = {}, {}
    if not history:
        return data, attrs
    keys = list(dict.fromkeys(k for row in history for k in row))
    for k in keys:
        col = np.array([row.get(k, np.nan) for row in history], dtype=float)
        ok = np.isfinite(col)
        data[f"history/{k}"] = col[ok]
        if not ok.all():
            attrs[f"history/{k}"] = {"rows": np.nonzero(ok)[0].astype(np.int64)}
    return data, attrs


def history_table(group: h5py.Group) -> dict:
    """history/{column} datasets -> column -> (K,) float array over all K
    history rows, NaN at rows a sparse column (attribute `rows`) lacks.
    Reads files written before sparse columns too (one value per row)."""
    raw = {k: (np.asarray(v[()], dtype=float), v.attrs.get("rows")) for k, v in group.items()
           if isinstance(v, h5py.Dataset)}
    n = max([len(v) for v, rows in raw.values() if rows is None] +
            [int(rows[-1]) + 1 for _, rows in raw.values() if rows is not None and len(rows)] + [0])
    out = {}
    for k, (values, rows) in raw.items():
        if rows is None:
            out[k] = values
        else:
            col = np.full(n, np.nan)
            col[np.asarray(rows, dtype=int)] = values
            out[k] = col
    return out


# ---------------------------------------------------------------- evaluate

def evaluate(reference_h5, actions_h5, out_h5, out_csv) -> None:
    """Replay actions open loop, compute metrics, write the method's result
    file (HDF5) and its metric row (CSV). The actions file must have been
    computed from this reference (read_actions).

    A replay that diverges (sim.Rollout) is cut at the divergence frame: the
    state is held from there on (so every array stays finite and (T+1) long),
    attribute diverged_frame and the status say where, and the fall frame is
    at or before it."""
    ref, ref_attrs = load_reference(reference_h5)
    model = load_model(ref.physics_dt)
    lay = layout(model)
    c = read_actions(actions_h5, reference_h5, ref, extra=True)
    actions, act_attrs = c["actions"], c.attrs
    method = act_attrs["method"]
    ver = verify(model, ref.qpos, ref.qvel, actions, ref.frame_dt, ref.substeps)
    row = {
        "clip": ref_attrs["clip"], "method": method, "status": ver.status,
        "frames": ref.n_frames, "frame_dt": ref.frame_dt, "physics_dt": ref.physics_dt,
        # Unknown for actions not computed by compute_actions: an empty
        # cell in the CSV, no attribute in the result file.
        "wall_s": float(act_attrs.get("wall_s", np.nan)),
        "cost_replays": float(act_attrs.get("cost_replays", np.nan)),
    }
    row.update(ver.metrics)
    data = {
        "actions": actions, "torques": actions * lay.torque_limit,
        "reference/qpos": ref.qpos, "reference/qvel": ref.qvel,
        "replay/qpos": ver.qpos, "replay/qvel": ver.qvel, "replay/joint_err": ver.joint_err,
        "replay/root_err": ver.root_err, "replay/root_rot_err": ver.root_rot_err,
        "replay/reward": ver.reward, "replay/single_step_err": ver.single_step_err,
    }
    units = {"actions": ACTION_UNITS, "torques": "N m", "replay/joint_err": "rad", "replay/root_err": "m",
             "replay/root_rot_err": "deg", "replay/single_step_err": "rad"}
    data_attrs = {name: {"units": u} for name, u in units.items()}
    for name, arr in c.data.items():
        if name not in ("actions", "torques"):
            data[name] = arr
            if c.data_attrs.get(name):
                data_attrs[name] = c.data_attrs[name]
    attrs = {
        "clip": ref_attrs["clip"], "method": method,
        "method_params": act_attrs.get("method_params", "{}"),
        "clip_sha256": ref_attrs["clip_sha256"], "model_sha256": ref_attrs["model_sha256"],
        "frame_dt": ref.frame_dt, "physics_dt": ref.physics_dt, "substeps": ref.substeps,
        "ground_shift_m": ref.ground_shift_m, "cycles": ref.cycles,
        "package_version": __version__, "mujoco_version": mujoco.__version__,
        "actuator_names": list(lay.actuator_names), "joint_names": list(JOINTS),
        "replay_s": float(act_attrs.get("replay_s", np.nan)), "diverged_frame": int(ver.diverged_frame),
        "reference_sha256": act_attrs["reference_sha256"],
    }
    attrs.update(row)
    attrs = {k: v for k, v in attrs.items() if not (k in UNMEASURED_COLUMNS + ("replay_s",) and np.isnan(v))}
    write_h5(out_h5, data, attrs, data_attrs)
    write_csv(out_csv, pd.DataFrame([row], columns=list(METRIC_COLUMNS)), optional=UNMEASURED_COLUMNS)


# ---------------------------------------------------------------- gains

def compute_gains(reference_h5, actions_h5, out_h5, *, threads: int = 1) -> None:
    """Reference + a method's actions -> the feedback controller around their
    replay (controller.feedback_gains): /gains (T, nu, 2nv), /states (T+1,
    nstate) nominal states, /actions (T, nu). The actions file must have
    been computed from this reference (read_actions)."""
    from .controller import REGULARIZATION, feedback_gains
    from .problem import TrackingProblem
    ref, ref_attrs = load_reference(reference_h5)
    model = load_model(ref.physics_dt)
    c = read_actions(actions_h5, reference_h5, ref)
    actions, method = c["actions"], c.attrs["method"]
    start = time.perf_counter()
    states, gains = feedback_gains(TrackingProblem.build(model, ref, threads), actions)
    wall = time.perf_counter() - start
    data_attrs = {
        "gains": {"description": "K_t: executed action = clip(actions[t] + gains[t] @ dx, -1, 1), dx the "
                                 "state minus states[t] in MuJoCo's tangent space (qpos difference as "
                                 "mj_differentiatePos, nv; then qvel difference, nv)",
                  "units": "normalised action per tangent-state unit (rad, m, rad/s, m/s)"},
        "states": {"description": "nominal full physics states (mjSTATE_FULLPHYSICS) of the open-loop replay"},
        "actions": {"units": ACTION_UNITS},
    }
    write_h5(out_h5, {"gains": gains, "states": states, "actions": actions},
             {"clip": ref_attrs["clip"], "method": method, "regularization": REGULARIZATION,
              "reference_sha256": _sha256(reference_h5), "wall_s": wall,
              "mujoco_version": mujoco.__version__, "package_version": __version__},
             data_attrs)


# ---------------------------------------------------------------- gather

def gather(csv_paths, out_csv) -> None:
    """Concatenate metric rows (CSV files with METRIC_COLUMNS) into one table."""
    frames = [read_metrics(p) for p in csv_paths]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(METRIC_COLUMNS))
    write_csv(out_csv, table, optional=UNMEASURED_COLUMNS)


# Metric columns that hold text (the rest are numbers, always finite).
TEXT_COLUMNS = ("clip", "method", "status", "fall_reason")
# Metric columns left empty for actions that compute_actions did not make
# (no measured cost); never NaN or Inf.
UNMEASURED_COLUMNS = ("wall_s", "cost_replays")


def read_metrics(path) -> pd.DataFrame:
    """A metric table ({method}.csv, comparison.csv, summary.csv), checked
    (io.read_csv): every metric column, finite numbers."""
    return read_csv(path, "metric table", METRIC_COLUMNS, text_columns=TEXT_COLUMNS,
                    optional=UNMEASURED_COLUMNS)
