"""Receding-horizon sampling MPC (MPPI or CEM) with the simulator in the loop.

At each frame t, from the state the committed actions reached, candidate
action sequences over the next H frames (the unperturbed plan, the sampling
mean, and smooth random perturbations of the mean) are rolled out together
in ONE ``simulate_frames`` call, scored with the shared tracking objective
against reference frames t+1..t+H (plus an optional terminal weight on frame
t+H), and the sampling mean is moved by MPPI (cost-weighted average) or CEM
(elite average). The plan committed at each frame is the best sequence ever
evaluated from that state, so a committed action never has a horizon cost
worse than the unperturbed plan's. Its first action is committed, the state
advances to that candidate's simulated frame t+1, and the horizon shifts.

Simulation is deterministic and the model has no solver warm start, so
replaying the committed actions from frame 0 reproduces the states MPC
planned from, bit for bit; the function checks this with a final replay and
reports its full-clip numbers from that replay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import mujoco
import numpy as np

from ..metrics import joint_errors
from ..objective import Weights, weight_settings, tracking_loss, tracking_residual
from ..model import layout
from ..problem import TrackingProblem
from ..settings import setting
from ..sim import STATE_SPEC, DataPool, simulate_frames, split_state
from . import MethodResult, warm_start

UPDATES = ("cem", "mppi")
NOISE_SCALINGS = ("uniform", "inertia")
INIT_METHODS = ("baseline", "invdyn")


@dataclass(frozen=True)
class MPCSettings(weight_settings(root_pos=1000.0, root_rot=30.0, vel=0.001)):
    """MPC settings (config block `mpc`). Defaults: config/config.yaml's
    values. The objective weights are heavier on the root than the shared
    defaults: with those a 20 cm root drop costs less than arm velocity
    noise, so sampling lets the body sink; these keep it up. The start is
    invdyn's actions: the PD baseline's are too far off to sample around."""
    horizon_frames: int = setting(6, "planning horizon H, clipped at the end of the clip", minimum=1,
                                  unit="frames")
    samples: int = setting(48, "candidates per iteration, the unperturbed plan and the sampling mean included",
                           minimum=1)
    noise_std: float = setting(0.1, "standard deviation of the action noise (normalised action units)",
                               minimum=0.0)
    noise_smoothing_s: float = setting(0.05, "std of the Gaussian that smooths the noise in time (0: white noise)",
                                       minimum=0.0, unit="s")
    noise_scaling: str = setting("uniform", "uniform: noise_std on every motor; inertia: scaled per motor by its "
                                 "joint inertia over torque limit, relative to the largest", choices=NOISE_SCALINGS)
    iterations: int = setting(6, "sampling rounds per frame", minimum=1, maximum=10000)
    update: str = setting("cem", "update of the sampling mean: cem (mean and std of the elite candidates) or "
                          "mppi (cost-weighted average)", choices=UPDATES)
    elite_fraction: float = setting(0.1, "cem: fraction of the candidates that define the new mean and std",
                                    exclusive_minimum=0.0, maximum=1.0)
    temperature: float = setting(0.5, "mppi: temperature, relative to the batch's median cost minus its minimum",
                                 exclusive_minimum=0.0)
    terminal_weight: float = setting(0.0, "extra multiple of the last horizon frame's tracking residual",
                                     minimum=0.0)
    seed: int = setting(0, "seed of the noise generator (same seed and threads, same actions)", minimum=0)
    init: str | None = setting("invdyn", "method whose actions are the initial plan; null: the PD baseline, "
                               "computed in the job", choices=INIT_METHODS)



def smooth_noise(rng: np.random.Generator, n: int, horizon: int, nu: int, sigma_frames: float) -> np.ndarray:
    """(n, horizon, nu) Gaussian noise with unit marginal std, correlated in
    time by a Gaussian kernel of std `sigma_frames` (0: white noise)."""
    if sigma_frames <= 0:
        return rng.standard_normal((n, horizon, nu))
    radius = int(np.ceil(3.0 * sigma_frames))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
    # Unit sum of squares keeps the filtered noise at unit variance.
    k /= np.sqrt(np.sum(k ** 2))
    white = rng.standard_normal((n, horizon + 2 * radius, nu))
    out = np.zeros((n, horizon, nu))
    for j, kj in enumerate(k):
        out += kj * white[:, j:j + horizon]
    return out


def inertia_noise_scale(model: mujoco.MjModel, data: mujoco.MjData, state: np.ndarray) -> np.ndarray:
    """(nstate,) -> (nu,) in (0, 1]: diagonal joint-space inertia of each
    actuator's DoF divided by its torque limit, over the largest such ratio.

    Equal normalised noise on every motor would shake a light forearm or
    foot (inertia ~0.02 kg m^2) fifty times harder than the chest (~2 kg m^2)
    and every such candidate loses on velocity error; scaling by inertia
    gives every joint noise of about the same angular acceleration."""
    mujoco.mj_setState(model, data, state, STATE_SPEC)
    mujoco.mj_forward(model, data)
    M = np.empty((model.nv, model.nv))
    mujoco.mj_fullM(model, data, M)
    lay = layout(model)
    ratio = np.diag(M)[lay.actuator_dof] / lay.torque_limit
    return ratio / ratio.max()


def horizon_costs(model: mujoco.MjModel, states: np.ndarray, diverged: np.ndarray, actions: np.ndarray,
                  qpos_ref: np.ndarray, qvel_ref: np.ndarray, w: Weights, terminal_weight: float) -> np.ndarray:
    """Cost of B rollouts over a horizon of H frames.

    states: (B, H+1, nstate); diverged: (B,) first diverged frame or -1;
    actions: (B, H, nu); qpos_ref (H+1, nq), qvel_ref (H+1, nv) the reference
    from the start frame. Returns (B,): tracking_loss plus terminal_weight
    times the squared residual of frame H; inf where the rollout diverged.
    """
    _, qpos, qvel = split_state(model, states)
    # tracking_loss's sum written out on the residual, with the reference
    # broadcast over the batch (tracking_loss takes one unbatched reference).
    ref_q = np.broadcast_to(qpos_ref, qpos.shape)
    ref_v = np.broadcast_to(qvel_ref, qvel.shape)
    r2 = np.sum(tracking_residual(model, qpos[:, 1:], qvel[:, 1:], ref_q[:, 1:], ref_v[:, 1:], w) ** 2, axis=-1)
    cost = r2.sum(axis=1) + w.effort * np.sum(actions ** 2, axis=(1, 2)) + terminal_weight * r2[:, -1]
    cost = np.where(np.isfinite(cost), cost, np.inf)
    cost[diverged >= 0] = np.inf
    return cost


def mppi_mean(candidates: np.ndarray, costs: np.ndarray, temperature: float) -> np.ndarray:
    """(B, H, nu), (B,) -> (H, nu) cost-weighted average with weights
    exp(-(c - c_min) / lam), lam = temperature * (median(c) - c_min) over the
    finite costs: scaling by the spread of this batch's costs makes the
    temperature dimensionless (the absolute cost of a horizon grows with the
    error already made, its spread is what separates candidates)."""
    ok = np.isfinite(costs)
    c = costs[ok]
    c_min = c.min()
    lam = temperature * max(float(np.median(c)) - c_min, 1e-12 * max(abs(c_min), 1.0))
    wts = np.zeros_like(costs)
    wts[ok] = np.exp(-(c - c_min) / lam)
    return np.tensordot(wts / wts.sum(), candidates, axes=1)


def cem_update(candidates: np.ndarray, costs: np.ndarray, elite_fraction: float,
               std_floor: float) -> tuple[np.ndarray, np.ndarray]:
    """(B, H, nu), (B,) -> mean (H, nu), std (H, nu) of the elite candidates
    (the ceil(elite_fraction * finite count) cheapest), std floored."""
    ok = np.flatnonzero(np.isfinite(costs))
    n_elite = max(1, int(np.ceil(elite_fraction * ok.size)))
    elite = candidates[ok[np.argsort(costs[ok], kind="stable")[:n_elite]]]
    return elite.mean(axis=0), np.maximum(elite.std(axis=0), std_floor)


@dataclass
class Plan:
    """Output of :func:`receding_horizon`.

    actions (T, nu) committed; states (T+1, nstate) the simulated states MPC
    planned from (states[0] the start state); horizon_cost (T,) cost of the
    committed plan at each frame; nominal_cost (T,) cost of the unperturbed
    plan at each frame; seconds (T,) wall time at the end of each frame;
    diverged_frame first frame at which every candidate diverged, -1 if none.
    """
    actions: np.ndarray
    states: np.ndarray
    horizon_cost: np.ndarray
    nominal_cost: np.ndarray
    seconds: np.ndarray
    diverged_frame: int


def receding_horizon(model: mujoco.MjModel, qpos_ref: np.ndarray, qvel_ref: np.ndarray, state0: np.ndarray,
                     nominal: np.ndarray, substeps: int, frame_dt: float, cfg: MPCSettings, w: Weights,
                     pool: DataPool) -> Plan:
    """Run MPC along a reference qpos_ref (T+1, nq), qvel_ref (T+1, nv) from
    state0 (nstate,), starting from the nominal actions (T, nu)."""
    T, nu = nominal.shape
    rng = np.random.default_rng(cfg.seed)
    sigma_frames = cfg.noise_smoothing_s / frame_dt
    nominal = np.clip(np.asarray(nominal, dtype=float), -1.0, 1.0)
    H0 = min(cfg.horizon_frames, T)
    # `safe` is the best sequence evaluated from the current state (the
    # unperturbed plan); `mean` is the centre of the sampling distribution.
    safe = nominal[:H0].copy()
    mean = safe.copy()
    actions = np.empty((T, nu))
    states = np.empty((T + 1, state0.shape[0]))
    states[0] = state0
    horizon_cost = np.empty(T)
    nominal_cost = np.empty(T)
    seconds = np.empty(T)
    diverged_frame = -1
    data = mujoco.MjData(model)
    start = time.perf_counter()
    for t in range(T):
        H = safe.shape[0]
        ref_q, ref_v = qpos_ref[t:t + H + 1], qvel_ref[t:t + H + 1]
        scale = inertia_noise_scale(model, data, states[t]) if cfg.noise_scaling == "inertia" else np.ones(nu)
        std = np.broadcast_to(cfg.noise_std * scale, (H, nu)).copy()
        best_cost, best_state1 = None, None
        for it in range(cfg.iterations):
            n_random = cfg.samples - 2
            cand = [safe[None]]
            if cfg.samples >= 2:
                cand.append(mean[None])
            if n_random > 0:
                eps = smooth_noise(rng, n_random, H, nu, sigma_frames)
                cand.append(np.clip(mean[None] + std[None] * eps, -1.0, 1.0))
            cand = np.concatenate(cand, axis=0)
            roll = simulate_frames(model, states[t], cand, substeps, pool)
            costs = horizon_costs(model, roll.states, roll.diverged_frame, cand, ref_q, ref_v, w,
                                  cfg.terminal_weight)
            if it == 0:
                nominal_cost[t] = costs[0]
                best_cost, best_state1 = costs[0], roll.states[0, 1].copy()
            i = int(np.argmin(costs))
            if costs[i] < best_cost:
                best_cost, best_state1 = costs[i], roll.states[i, 1].copy()
                safe = cand[i].copy()
            if not np.isfinite(costs).any():
                continue
            if cfg.update == "mppi":
                mean = mppi_mean(cand, costs, cfg.temperature)
            else:
                mean, std = cem_update(cand, costs, cfg.elite_fraction, 0.1 * cfg.noise_std * scale)
        if not np.isfinite(best_cost) and diverged_frame < 0:
            diverged_frame = t
        actions[t] = safe[0]
        states[t + 1] = best_state1
        horizon_cost[t] = best_cost
        seconds[t] = time.perf_counter() - start
        # Shift: drop the committed action, extend with the nominal's action
        # for the frame entering the horizon (if the clip has one).
        tail = nominal[t + H:t + H + 1] if t + H < T else nominal[:0]
        safe = np.concatenate([safe[1:], tail])
        mean = np.concatenate([mean[1:], tail])
    return Plan(actions, states, horizon_cost, nominal_cost, seconds, diverged_frame)


def full_loss(model: mujoco.MjModel, qpos_ref: np.ndarray, qvel_ref: np.ndarray, state0: np.ndarray,
              actions: np.ndarray, substeps: int, w: Weights, pool: DataPool) -> tuple[float, float, np.ndarray]:
    """Replay actions (T, nu) from state0 -> (tracking loss over the clip,
    err_full_rad (mean joint error over frames 1..T), states (T+1, nstate)).
    A diverged replay has infinite loss and error."""
    roll = simulate_frames(model, state0, actions, substeps, pool)
    _, qpos, qvel = split_state(model, roll.states[0])
    if roll.diverged_frame[0] >= 0:
        return np.inf, np.inf, roll.states[0]
    loss = float(tracking_loss(model, qpos, qvel, qpos_ref, qvel_ref, actions, w))
    err = float(joint_errors(model, qpos[1:], qpos_ref[1:]).mean())
    return loss, err, roll.states[0]


def mpc(problem: TrackingProblem, settings: MPCSettings, init_actions: np.ndarray | None = None) -> MethodResult:
    """Sampling MPC along the reference; starts from init_actions (T, nu) or
    the PD baseline. Never returns actions with a higher full-clip loss than
    the initialisation's (falls back to it and says so in info)."""
    model, ref, pool = problem.model, problem.ref, problem.pool
    cfg = settings
    w = settings.weights
    T = ref.n_frames - 1
    init_actions = warm_start(model, ref, init_actions, "mpc")
    state0 = problem.ref_states[0]
    init_loss, init_err, _ = full_loss(model, ref.qpos, ref.qvel, state0, init_actions, ref.substeps, w, pool)
    plan = receding_horizon(model, ref.qpos, ref.qvel, state0, init_actions, ref.substeps, ref.frame_dt,
                            cfg, w, pool)
    loss, err, replay = full_loss(model, ref.qpos, ref.qvel, state0, plan.actions, ref.substeps, w, pool)
    # Per-frame joint error and running loss of the committed trajectory.
    _, qpos, qvel = split_state(model, plan.states)
    frame_err = joint_errors(model, qpos[1:], ref.qpos[1:]).mean(axis=1)
    r = tracking_residual(model, qpos[1:], qvel[1:], ref.qpos[1:], ref.qvel[1:], w)
    running = np.cumsum(np.sum(r ** 2, axis=1) + w.effort * np.sum(plan.actions ** 2, axis=1))
    history = []
    for t in range(T):
        history.append({
            "iteration": t + 1, "loss": float(running[t]), "horizon_loss": float(plan.horizon_cost[t]),
            "nominal_horizon_loss": float(plan.nominal_cost[t]), "err_rad": float(frame_err[t]),
            "err_full_rad": err if t == T - 1 else np.nan, "seconds": float(plan.seconds[t]),
        })
    info = {
        "mpc_init_loss": init_loss, "mpc_init_err_full_rad": init_err, "mpc_loss": loss,
        "mpc_err_full_rad": err, "mpc_replay_matches": bool(np.array_equal(replay, plan.states)),
        "mpc_diverged_frame": plan.diverged_frame, "mpc_fallback": "",
    }
    # A diverged replay has no finite loss or error: those values are left
    # out and mpc_init_diverged / mpc_replay_diverged say so (no Inf is ever
    # written to a file; the invdyn init of dance_a diverges at 0.81 s).
    info["mpc_init_diverged"] = not np.isfinite(init_loss)
    info["mpc_replay_diverged"] = not np.isfinite(loss)
    info = {k: v for k, v in info.items() if not (isinstance(v, float) and not np.isfinite(v))}
    actions = plan.actions
    if not loss <= init_loss:
        info["mpc_fallback"] = (f"full-clip loss {loss:.6g} of the MPC actions is worse than the "
                                f"initialisation's {init_loss:.6g}; returned the initialisation")
        actions = init_actions
    return MethodResult(actions, history, {"mpc/horizon_cost": plan.horizon_cost}, info)
