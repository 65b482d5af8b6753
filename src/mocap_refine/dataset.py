"""A policy-ready dataset from a method's actions and its feedback controller.

For every clip: the clean episode (the method's actions replayed from the
reference state of frame 0) and ``noisy_rollouts`` episodes that start at a
random frame from the reference state there and run the controller
(:mod:`mocap_refine.controller`) with Gaussian action noise; the clean label
of a noisy step is the controller's action before the noise. Every stored
row is the simulator's own state: stepping ``actions[t]`` from
``observations[t]`` gives ``observations[t + 1]`` bit for bit (the
Gymnasium environment, :mod:`mocap_refine.env`, does exactly that). An
episode ends at the clip's end or before a transition that diverges;
``valid`` marks the transitions before the fall rule's first fall
(:func:`mocap_refine.metrics.fall_flags`).

Layout (every dataset has ``units`` and ``description`` attributes; the
root's ``layout`` attribute repeats this; docs/dataset.md):

    /columns/observations, /columns/observation_units, /columns/actions,
    /columns/action_torque_limit        names of every column
    /stats/{observations,actions,clean_actions}_{mean,std}
                                        over the training clips' valid rows
    /split/train, /split/validation     clip names
    /clips/{clip}/observations (T+1, obs_dim), actions (T, nu),
        clean_actions (T, nu), rewards (T,), valid (T,), frames (T+1,),
        reference/qpos, reference/qvel  the clean episode and the reference
    /clips/{clip}/noisy/{i}/...         the same fields, noisy rollout i
"""

from __future__ import annotations

import hashlib
import json
import platform
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import mujoco
import numpy as np

from . import __version__
from .controller import feedback_action
from .io import H5_LIBVER, FileProblem, atomic_path, read_h5
from .metrics import FALL_REASONS, fall_flags, first_fall, imitation_reward, reference_contact_near
from .model import humanoid_xml, layout, load_model
from .settings import setting
from .sim import DataPool, make_state, simulate_frames, split_state

FORMAT = "mocap_refine.dataset"
FORMAT_VERSION = 1
_FREE, _BALL, _HINGE = (int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_BALL),
                        int(mujoco.mjtJoint.mjJNT_HINGE))
ACTION_UNITS = "normalised torque in [-1, 1] (x action_torque_limit = N m)"


DATASET_SUMMARY = ("the policy-ready dataset results/dataset/{method}.h5 (rule dataset): noisy controller "
                   "rollouts, split, normalisation statistics")


@dataclass(frozen=True)
class DatasetSettings:
    """The config's `dataset` block; the schema block, the config file's
    defaults and the config checks are generated from these declarations
    (python -m mocap_refine.settings)."""
    noisy_rollouts: int = setting(20, "feedback-controller rollouts with action noise per clip, each from a "
                                  "random start frame", minimum=0, maximum=100000)
    action_noise: float = setting(0.05, "standard deviation of the Gaussian noise added to each executed "
                                  "action (MoCapAct uses 0.1, PHC 0.05)", minimum=0.0, maximum=2.0,
                                  unit="normalised action units")
    seed: int = setting(0, "seeds the noise and start frames, with the clip name and rollout index (a clip's "
                        "rollouts do not depend on the other clips)", minimum=0, maximum=2 ** 32 - 1)
    body_positions: bool = setting(False, "also observe every body's world position (m)")
    validation_clips: tuple[str, ...] = setting(("jump",), "clips of the validation split, the others train "
                                                "(each must be one of the configured clips; a dataset needs "
                                                "one training clip)")


# ---------------------------------------------------------------- model and observations

def model_from_mjcf(mjcf: str, physics_dt: float) -> mujoco.MjModel:
    """The humanoid compiled from stored MJCF text with the clip's physics
    timestep (s) set exactly (the text's own timestep is a placeholder)."""
    model = mujoco.MjModel.from_xml_string(mjcf)
    model.opt.timestep = float(physics_dt)
    return model


def observation_columns(model: mujoco.MjModel, body_positions: bool) -> tuple[list[str], list[str]]:
    """Names and units of the observation columns: qpos (nq), qvel (nv),
    phase, then (body_positions) x, y, z of every body but the world."""
    names, units = [], []
    for j in range(model.njnt):
        jname = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
        jtype = int(model.jnt_type[j])
        if jtype == _FREE:
            names += [f"qpos_{jname}_{a}" for a in ("x", "y", "z")]
            units += ["m"] * 3
        if jtype in (_FREE, _BALL):
            names += [f"qpos_{jname}_q{a}" for a in ("w", "x", "y", "z")]
            units += ["unit quaternion"] * 4
        elif jtype == _HINGE:
            names.append(f"qpos_{jname}")
            units.append("rad")
    for j in range(model.njnt):
        jname = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
        jtype = int(model.jnt_type[j])
        if jtype == _FREE:
            names += [f"qvel_{jname}_v{a}" for a in ("x", "y", "z")]
            units += ["m/s (world frame)"] * 3
            names += [f"qvel_{jname}_w{a}" for a in ("x", "y", "z")]
            units += ["rad/s (body frame)"] * 3
        elif jtype == _BALL:
            names += [f"qvel_{jname}_w{a}" for a in ("x", "y", "z")]
            units += ["rad/s (child body frame)"] * 3
        elif jtype == _HINGE:
            names.append(f"qvel_{jname}")
            units.append("rad/s")
    names.append("phase")
    units.append("clip fraction: frame / (frames - 1), in [0, 1]")
    if body_positions:
        for b in range(1, model.nbody):
            bname = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b)
            names += [f"pos_{bname}_{a}" for a in ("x", "y", "z")]
            units += ["m (world frame)"] * 3
    assert len(names) == model.nq + model.nv + 1 + (3 * (model.nbody - 1) if body_positions else 0)
    return names, units


def observe(model: mujoco.MjModel, states: np.ndarray, frames: np.ndarray, n_frames: int,
            body_positions: bool) -> np.ndarray:
    """(B, nstate) physics states at clip frames (B,) -> (B, obs_dim)
    observations (columns: :func:`observation_columns`)."""
    states = np.atleast_2d(states)
    _, qpos, qvel = split_state(model, states)
    phase = np.asarray(frames, dtype=float)[:, None] / float(n_frames - 1)
    parts = [qpos, qvel, phase]
    if body_positions:
        data = mujoco.MjData(model)
        pos = np.empty((states.shape[0], 3 * (model.nbody - 1)))
        for i in range(states.shape[0]):
            data.qpos[:] = qpos[i]
            mujoco.mj_kinematics(model, data)
            pos[i] = data.xpos[1:].ravel()
        parts.append(pos)
    return np.concatenate(parts, axis=1)


def score_rows(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray, qpos_ref: np.ndarray,
               qvel_ref: np.ndarray, near: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeepMimic reward (T,) and fall flags (T, 3) of states against the
    reference at the same frames, row by row, so that the dataset (many
    rows) and the environment (one row per step) compute the same bits.
    qpos/qpos_ref (T, nq), qvel/qvel_ref (T, nv), near (T, B)
    (:func:`mocap_refine.metrics.reference_contact_near` rows)."""
    T = qpos.shape[0]
    rewards = np.empty(T)
    flags = np.empty((T, len(FALL_REASONS) - 1), dtype=bool)
    for i in range(T):
        s = slice(i, i + 1)
        rewards[i] = imitation_reward(model, qpos[s], qvel[s], qpos_ref[s], qvel_ref[s])[0]
        flags[i] = fall_flags(model, qpos[s], qpos_ref[s], near[s])[0]
    return rewards, flags


# ---------------------------------------------------------------- episodes

@dataclass
class Episode:
    """One rollout from `start_frame`: states (n+1, nstate), executed and
    clean actions (n, nu); diverged: the transition after the last state
    blew up (it is not stored)."""
    start_frame: int
    states: np.ndarray
    actions: np.ndarray
    clean_actions: np.ndarray
    diverged: bool


def run_episode(model: mujoco.MjModel, substeps: int, nominal_actions: np.ndarray,
                nominal_states: np.ndarray, gains: np.ndarray, start_frame: int,
                start_state: np.ndarray, noise: np.ndarray | None = None,
                pool: DataPool | None = None) -> Episode:
    """The controller (controller.feedback_action) from `start_frame` to the
    clip's end, one frame per call of the one simulator (as the environment
    steps), stopping before a diverging transition. nominal_actions (T, nu),
    nominal_states (T+1, nstate), gains (T, nu, 2nv); noise (T - start_frame,
    nu) added to the executed action (None: none)."""
    pool = pool or DataPool(model, 1)
    T = nominal_actions.shape[0]
    states = [np.asarray(start_state, dtype=float)]
    executed, clean = [], []
    diverged = False
    for i, t in enumerate(range(start_frame, T)):
        c = feedback_action(model, states[-1], nominal_states[t], nominal_actions[t], gains[t])
        a = c if noise is None else np.clip(c + noise[i], -1.0, 1.0)
        step = simulate_frames(model, states[-1], a[None], substeps, pool)
        if step.diverged_frame[0] >= 0:
            diverged = True
            break
        states.append(step.states[0, 1])
        executed.append(a)
        clean.append(c)
    nu = nominal_actions.shape[1]
    return Episode(int(start_frame), np.array(states),
                   np.array(executed).reshape(-1, nu), np.array(clean).reshape(-1, nu), diverged)


@dataclass
class ClipSource:
    """A clip's inputs: name, reference file, gains file (rule gains)."""
    name: str
    reference_h5: Path
    gains_h5: Path


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def split_clips(clips: list[str], validation_clips) -> tuple[list[str], list[str]]:
    """(train, validation) clip names in `clips` order; ValueError when no
    clip is left to train on."""
    validation = [c for c in clips if c in set(validation_clips)]
    train = [c for c in clips if c not in set(validation_clips)]
    if not train:
        raise ValueError(f"dataset.validation_clips ({', '.join(validation_clips)}) takes every clip of "
                         f"the dataset ({', '.join(clips)}): no clip is left to train on")
    return train, validation


# ---------------------------------------------------------------- writing

def _put(group: h5py.Group, name: str, data, units: str, description: str) -> h5py.Dataset:
    """A dataset with its units and description, checksummed as io.write_h5
    writes (Fletcher-32); NaN or Inf refused (ValueError naming it)."""
    data = np.asarray(data)
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise ValueError(f"dataset: not written: {group.name}/{name} holds NaN or Inf")
    if data.size and data.dtype.kind in "biuf":
        ds = group.create_dataset(name, data=data, chunks=True, fletcher32=True, track_times=False)
    else:
        ds = group.create_dataset(name, data=data, track_times=False)
    ds.attrs["units"] = units
    ds.attrs["description"] = description
    return ds


def _strings(values) -> np.ndarray:
    return np.array(list(values), dtype=h5py.string_dtype("utf-8"))


LAYOUT = __doc__[__doc__.index("Layout"):]


def _write_episode(g: h5py.Group, model, ep: Episode, ref, near, n_frames: int, body_positions: bool,
                   extra_attrs: dict) -> dict:
    """Label and write one episode; returns its rows for the statistics."""
    n = ep.actions.shape[0]
    frames = np.arange(ep.start_frame, ep.start_frame + n + 1)
    obs = observe(model, ep.states, frames, n_frames, body_positions)
    _, q, v = split_state(model, ep.states)
    rewards, flags = score_rows(model, q[1:], v[1:], ref.qpos[frames[1:]], ref.qvel[frames[1:]], near[frames[1:]])
    fall = first_fall(flags)
    valid = np.ones(n, dtype=bool)
    fall_frame, reason = -1, ""
    if fall.frame >= 0:
        valid[fall.frame:] = False
        fall_frame, reason = int(frames[fall.frame + 1]), fall.reason
    elif ep.diverged:
        fall_frame, reason = int(frames[-1] + 1), "diverged"
    _put(g, "observations", obs, "per column: /columns/observation_units",
         "state at each row's clip frame: qpos, qvel, phase[, body positions] (/columns/observations)")
    _put(g, "actions", ep.actions, ACTION_UNITS,
         "executed action t, held for one frame: takes observations[t] to observations[t+1]")
    _put(g, "clean_actions", ep.clean_actions, ACTION_UNITS,
         "label: the controller's action at observations[t] before the noise")
    _put(g, "rewards", rewards, "1 (DeepMimic imitation reward in [0, 1])",
         "reward of transition t: observations[t+1] against the reference at frames[t+1]")
    _put(g, "valid", valid, "bool",
         "transition t ends before the fall rule's first fall (mocap_refine.metrics.fall_flags)")
    _put(g, "frames", frames.astype(np.int64), "frame index",
         "clip frame of each observation row (phase = frames / (clip frames - 1))")
    attrs = {"start_frame": ep.start_frame, "transitions": n, "valid_transitions": int(valid.sum()),
             "fall_frame": fall_frame, "fall_reason": reason, "diverged": bool(ep.diverged),
             "return": float(rewards.sum())}
    attrs.update(extra_attrs)
    for k, val in attrs.items():
        g.attrs[k] = val
    return {"observations": obs[:-1][valid], "actions": ep.actions[valid],
            "clean_actions": ep.clean_actions[valid], "valid_transitions": int(valid.sum())}


def build_dataset(sources: list[ClipSource], out_h5, settings: DatasetSettings = DatasetSettings(),
                  method: str | None = None) -> None:
    """Reference and gains files of every clip -> the dataset (module
    docstring). Same inputs and settings, same bytes."""
    from .pipeline import load_reference
    from .sim import state_size
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"dataset: clip names repeat: {names}")
    train, validation = split_clips(names, settings.validation_clips)
    mjcf = humanoid_xml()
    columns = None
    stats_rows = []
    methods = set()
    # Built in memory (HDF5's core driver, as io.write_h5) and written at the
    # end with plain file I/O, atomically: a failure leaves no file.
    f = h5py.File(Path(out_h5).name, "w", driver="core", backing_store=False, libver=H5_LIBVER)
    try:
        clips_group = f.create_group("clips")
        for src in sources:
            ref, ref_attrs = load_reference(src.reference_h5)
            # The dataset's model: the stored MJCF with the clip's exact timestep.
            physics_dt = load_model(ref.physics_dt).opt.timestep
            model = model_from_mjcf(mjcf, physics_dt)
            T, nu, nv = ref.n_frames - 1, model.nu, model.nv
            g = read_h5(src.gains_h5, "gains file", ("gains", "states", "actions"), ("reference_sha256", "method"),
                        shapes={"gains": (T, nu, 2 * nv), "states": (T + 1, state_size(model)),
                                "actions": (T, nu)},
                        hint=f"rebuild it from {src.reference_h5} and the method's actions (rule gains)")
            gains, nominal, actions, gattrs = g["gains"], g["states"], g["actions"], g.attrs
            ref_sha = _sha256(src.reference_h5)
            if gattrs["reference_sha256"] != ref_sha:
                raise FileProblem(f"{src.gains_h5}: gains file computed for another reference than "
                                  f"{src.reference_h5} (its reference_sha256 differs); rebuild it from "
                                  f"this reference (rule gains).")
            methods.add(gattrs["method"])
            if columns is None:
                columns = observation_columns(model, settings.body_positions)
            pool = DataPool(model, 1)
            ref_states = np.stack([make_state(model, ref.qpos[t], ref.qvel[t], t * ref.frame_dt)
                                   for t in range(ref.n_frames)])
            near = reference_contact_near(model, ref.qpos)
            clean = run_episode(model, ref.substeps, actions, nominal, gains, 0, ref_states[0], None, pool)
            if clean.diverged or not np.array_equal(clean.states, nominal):
                raise RuntimeError(f"{src.gains_h5}: the replay from the dataset's stored model does not "
                                   f"reproduce the gains file's nominal states bit for bit")
            cg = clips_group.create_group(src.name)
            rg = cg.create_group("reference")
            _put(rg, "qpos", ref.qpos, "per column: /columns/observation_units (qpos columns)",
                 "reference (mocap) qpos of every clip frame")
            _put(rg, "qvel", ref.qvel, "per column: /columns/observation_units (qvel columns)",
                 "reference (mocap) qvel of every clip frame")
            rows = _write_episode(cg, model, clean, ref, near, ref.n_frames, settings.body_positions,
                                  {"kind": "clean"})
            clean_valid = rows["valid_transitions"]
            split = "validation" if src.name in validation else "train"
            if split == "train":
                stats_rows.append(rows)
            for k, val in {"frame_dt": ref.frame_dt, "physics_dt": physics_dt, "substeps": ref.substeps,
                           "frames": ref.n_frames, "cycles": ref.cycles, "ground_shift_m": ref.ground_shift_m,
                           "split": split, "method": gattrs.get("method", ""),
                           "reference_sha256": ref_sha, "gains_sha256": _sha256(src.gains_h5),
                           "noisy_rollouts": settings.noisy_rollouts}.items():
                cg.attrs[k] = val
            ng = cg.create_group("noisy")
            crc = zlib.crc32(src.name.encode())
            for i in range(settings.noisy_rollouts):
                entropy = [int(settings.seed), int(crc), i]
                rng = np.random.default_rng(entropy)
                start = int(rng.integers(0, max(1, clean_valid)))
                noise = settings.action_noise * rng.standard_normal((T - start, model.nu))
                ep = run_episode(model, ref.substeps, actions, nominal, gains, start, ref_states[start], noise, pool)
                rows = _write_episode(ng.create_group(str(i)), model, ep, ref, near, ref.n_frames,
                                      settings.body_positions,
                                      {"kind": "noisy", "action_noise": settings.action_noise,
                                       "noise_seed": json.dumps(entropy)})
                if split == "train":
                    stats_rows.append(rows)
        _write_globals(f, model, columns, stats_rows, train, validation, settings, mjcf,
                       ",".join(sorted(methods)) if method is None else method)
        f.flush()
        image = f.id.get_file_image()
    finally:
        f.close()
    with atomic_path(out_h5) as tmp, open(tmp, "wb") as out:
        out.write(image)


def _write_globals(f, model, columns, stats_rows, train, validation, settings, mjcf, method) -> None:
    lay = layout(model)
    cols = f.create_group("columns")
    _put(cols, "observations", _strings(columns[0]), "name", "name of each observation column")
    _put(cols, "observation_units", _strings(columns[1]), "unit", "unit of each observation column")
    _put(cols, "actions", _strings(lay.actuator_names), "name",
         "name of each action column (a motor; ball joints have one per local axis x, y, z)")
    _put(cols, "action_torque_limit", lay.torque_limit, "N m",
         "torque of action 1.0 per action column (the motor's gear)")
    st = f.create_group("stats")
    for key in ("observations", "actions", "clean_actions"):
        rows = np.concatenate([r[key] for r in stats_rows], axis=0)
        if rows.shape[0] == 0:
            raise ValueError("dataset: the training clips have no valid transition (every episode falls "
                             "at its first frame); statistics cannot be computed")
        unit = "per column: /columns/observation_units" if key == "observations" else ACTION_UNITS
        _put(st, f"{key}_mean", rows.mean(axis=0), unit,
             f"mean of {key} over the valid rows of the training split (clean and noisy episodes)")
        _put(st, f"{key}_std", rows.std(axis=0), unit,
             f"standard deviation (ddof 0) of {key} over the same rows; 0 for a constant column")
    sp = f.create_group("split")
    _put(sp, "train", _strings(train), "clip name", "clips of the training split")
    _put(sp, "validation", _strings(validation), "clip name",
         "clips of the validation split (config dataset.validation_clips)")
    attrs = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "method": method,
        "description": ("Policy-ready tracking data: per clip a clean replay of the method's actions and noisy "
                        "rollouts of its feedback controller with clean labels. Stepping actions[t] from "
                        "observations[t] in the stored model gives observations[t+1] bit for bit."),
        "layout": LAYOUT, "mjcf": mjcf,
        "mjcf_note": "compile with mujoco.MjModel.from_xml_string, then set opt.timestep to the clip's physics_dt",
        "mujoco_version": mujoco.__version__, "package_version": __version__,
        "numpy_version": np.__version__, "machine": platform.machine(),
        "settings": json.dumps({**asdict(settings), "validation_clips": list(settings.validation_clips)},
                               sort_keys=True),
        "env_id": "mocap_refine/Tracking-v0",
    }
    for k, v in attrs.items():
        f.attrs[k] = v
