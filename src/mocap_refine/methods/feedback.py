"""Iterative error feedback (design document, method 1).

Replay the actions open loop with ``simulate_frames``, measure each frame's
tracking error, and correct the action that led to it through the PD gains:

    a_t <- clip(a_t + alpha * (kp * dq_{t+1} + kd * dv_{t+1}) / torque_limit)

dq is the reference minus the simulated pose of the actuated DoFs in the
tangent space (rad, joint-local axes, the frame motor torques act in), dv the
velocity difference (rad/s); kp, kd are DeepMimic's PD gains, so an angle
error becomes a torque before it is normalised (angle and torque are
different units; alpha is dimensionless). Action t is held over frame t, so
the error at frame t+1 corrects it. This is iterative learning control with a
PD-type update.

Two forms:
    full (windowed: false): every iteration replays the whole clip from
        frame 0 and corrects every action.
    windowed (windowed: true): the clip is refined in consecutive windows of
        `window_frames` frames. A window is replayed from the simulated state
        at its start (stored from the replay of the actions already
        committed, so nothing before it is re-simulated) and corrected until
        its mean joint error is below `window_tol_rad` or after `iterations`
        corrections. Each correction is a line search: the steps alpha * s
        for s in `alpha_scales` are rolled out together in one batched call
        (in parallel on the threads) and the next iteration continues from
        the one with the lowest window tracking loss. The best iterate of the
        window is committed and the next window starts where it ends.
        Correcting frames after a fall is useless, and this form never has to.

Selection: the returned actions are the best full-clip candidate seen (the
initial actions, every full iteration, every state after a window commit)
by the tracking loss of objective.py, among candidates whose full-clip mean
joint error err_full_rad is not worse than the initial actions'. So the
output is never worse than its initialisation in either measure.

History: one row per full-clip evaluation: iteration, loss, best_loss
(running best, non-increasing), err_full_rad, err50_rad, fall_frame, seconds
(cumulative), window_start (windowed form; -1 for the initial row and the
full form).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import mujoco
import numpy as np

from ..metrics import fall_frame, joint_errors
from ..model import layout
from ..objective import Weights, qpos_difference, tracking_loss
from ..problem import TrackingProblem
from ..settings import setting
from ..sim import simulate_frames, split_state
from . import MethodResult, warm_start

INIT_METHODS = ("baseline", "invdyn")


# Measured on dance_a and walk (README of this method in the module
# docstring): the design document's alpha 0.5 with 3 iterations never improves
# on its PD warm start in either form (the PD-mapped correction held over a
# whole frame overshoots: kp up to 1000 N m/rad over 17-33 ms on light
# links), and the full form never gets past the first fall. A small gain,
# more iterations and short windows track both clips for 50+ frames.
@dataclass(frozen=True)
class FeedbackSettings:
    alpha: float = setting(0.05, "correction gain applied to the PD-mapped joint error", exclusive_minimum=0.0,
                           maximum=10.0)
    iterations: int = setting(20, "replay-and-correct iterations (windowed form: per window)", minimum=0,
                              maximum=10000)
    windowed: bool = setting(True, "refine in windows that advance once a window tracks; false: every "
                             "iteration replays and corrects the whole clip")
    window_frames: int = setting(5, "frames per refinement window", minimum=1)
    window_tol_rad: float = setting(0.02, "windowed form: a window tracks, and the next one starts, once its "
                                    "mean joint error is below this, or after `iterations` corrections",
                                    minimum=0.0, unit="rad")
    alpha_scales: tuple[float, ...] = setting(
        (0.5, 1.0, 2.0, 4.0), "windowed form: each correction tries the steps alpha * s for every s in this "
        "list in one batched rollout and continues from the best", exclusive_minimum=0.0)
    init: str | None = setting("baseline", "method whose actions start the refinement; null: the PD baseline, "
                               "computed in the job", choices=INIT_METHODS)


def correction(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray,
               qpos_ref: np.ndarray, qvel_ref: np.ndarray) -> np.ndarray:
    """PD-mapped error in normalised action units: (K, nq), (K, nv) simulated
    and reference states -> (K, nu) = (kp * dq + kd * dv) / torque_limit for
    the actuated DoFs, dq = reference minus simulated pose (tangent space,
    local to the simulated pose), dv = reference minus simulated velocity."""
    lay = layout(model)
    dq = qpos_difference(model, qpos_ref, qpos)[..., lay.actuator_dof]
    dv = (qvel_ref - qvel)[..., lay.actuator_dof]
    return (lay.kp * dq + lay.kd * dv) / lay.torque_limit


def _evaluate(model, ref, states, diverged, actions, w) -> dict:
    """Full-clip numbers of one replay: states (T+1, nstate)."""
    _, qpos, qvel = split_state(model, states)
    per_frame = joint_errors(model, qpos, ref.qpos).mean(axis=1)
    T = actions.shape[0]
    fall = fall_frame(model, qpos, ref.qpos)
    if diverged >= 0:
        fall = diverged if fall < 0 else min(fall, diverged)
    return {
        "loss": float(tracking_loss(model, qpos, qvel, ref.qpos, ref.qvel, actions, w)),
        "err_full_rad": float(per_frame[1:].mean()) if T else 0.0,
        "err50_rad": float(per_frame[1:min(50, T) + 1].mean()) if T else 0.0,
        "fall_frame": int(fall),
    }


class _Best:
    """Running best candidate: lowest loss among candidates whose err_full
    is not above the initial actions'."""

    def __init__(self, actions, row):
        self.actions = actions.copy()
        self.loss = row["loss"]
        self.err_cap = row["err_full_rad"]

    def offer(self, actions, row) -> None:
        if row["loss"] < self.loss and row["err_full_rad"] <= self.err_cap:
            self.actions = actions.copy()
            self.loss = row["loss"]


def feedback(problem: TrackingProblem, settings: FeedbackSettings,
             init_actions: np.ndarray | None = None) -> MethodResult:
    """Iterative error feedback; see the module docstring. init_actions
    (T, nu) warm start (baseline or invdyn actions); None -> PD baseline.
    The loss is the shared tracking objective with its default weights."""
    model, ref, pool, ref_states = problem.model, problem.ref, problem.pool, problem.ref_states
    w = Weights()
    T = ref.n_frames - 1
    init_actions = warm_start(model, ref, init_actions, "feedback")
    start = time.perf_counter()
    history = []

    def replay(actions, state0=ref_states[0]):
        out = simulate_frames(model, state0, actions, ref.substeps, pool)
        return out.states[0], int(out.diverged_frame[0])

    def record(iteration, actions, states, diverged, window_start=-1):
        row = {"iteration": iteration, **_evaluate(model, ref, states, diverged, actions, w)}
        if best is not None:
            best.offer(actions, row)
        row["best_loss"] = best.loss if best is not None else row["loss"]
        row["window_start"] = window_start
        row["seconds"] = time.perf_counter() - start
        history.append(row)
        return row

    actions = init_actions.copy()
    states, diverged = replay(actions)
    best = None
    first = record(0, actions, states, diverged)
    best = _Best(actions, first)
    alpha = float(settings.alpha)
    iterations = settings.iterations
    if T == 0:
        return MethodResult(best.actions, history, {}, {"form": "none"})

    if not settings.windowed:
        for it in range(1, iterations + 1):
            _, qpos, qvel = split_state(model, states)
            actions = np.clip(actions + alpha * correction(model, qpos[1:], qvel[1:], ref.qpos[1:],
                                                           ref.qvel[1:]), -1.0, 1.0)
            states, diverged = replay(actions)
            record(it, actions, states, diverged)
        return MethodResult(best.actions, history, {}, {"form": "full"})

    W = settings.window_frames
    tol = float(settings.window_tol_rad)
    steps = alpha * np.asarray(settings.alpha_scales, dtype=float)
    window_iters = np.zeros(0, dtype=int)
    for k, w0 in enumerate(range(0, T, W)):
        w1 = min(T, w0 + W)
        ref_q, ref_v = ref.qpos[w0:w1 + 1], ref.qvel[w0:w1 + 1]
        acts = actions[w0:w1].copy()
        # states holds the replay of the current actions (deterministic), so
        # the window's start trajectory needs no new rollout.
        win_states = states[w0:w1 + 1].copy()
        _, qpos, qvel = split_state(model, win_states)
        loss0 = float(tracking_loss(model, qpos, qvel, ref_q, ref_v, acts, w))
        win_best = (loss0 if np.isfinite(loss0) else np.inf, acts, win_states)
        cur = win_best
        used = 0
        for it in range(iterations):
            _, qpos, qvel = split_state(model, cur[2])
            if float(joint_errors(model, qpos[1:], ref_q[1:]).mean()) < tol:
                break
            # Every step size of the search in one batched rollout: the
            # candidates run in parallel on the pool's threads.
            corr = correction(model, qpos[1:], qvel[1:], ref_q[1:], ref_v[1:])
            cands = np.clip(cur[1][None] + steps[:, None, None] * corr[None], -1.0, 1.0)
            roll = simulate_frames(model, states[w0], cands, ref.substeps, pool)
            losses = _window_losses(model, roll, cands, ref_q, ref_v, w)
            used += 1
            i = int(np.argmin(losses))
            if not np.isfinite(losses[i]):
                break
            # Like plain error feedback, continue from the best step even if
            # it does not lower the loss (the iteration is not a descent
            # method); the best iterate seen is what gets committed.
            cur = (float(losses[i]), cands[i], roll.states[i])
            if cur[0] < win_best[0]:
                win_best = cur
        window_iters = np.append(window_iters, used)
        actions[w0:w1] = win_best[1]
        # Re-simulate the rest of the clip from the committed window's end:
        # the next window starts there, and the full-clip row needs it.
        tail, tail_div = replay(actions[w1:], win_best[2][-1]) if w1 < T else (win_best[2][-1:], -1)
        states = np.concatenate([states[:w0], win_best[2], tail[1:]], axis=0)
        diverged = _first_divergence(states, model, ref, actions)
        record(k + 1, actions, states, diverged, window_start=w0)
    return MethodResult(best.actions, history, {"feedback/window_iterations": window_iters},
                        {"form": "windowed"})


def _window_losses(model, roll, cands, ref_q, ref_v, w) -> np.ndarray:
    """(K,) tracking loss of K candidate windows (inf where diverged)."""
    _, qpos, qvel = split_state(model, roll.states)
    losses = tracking_loss(model, qpos, qvel, ref_q, ref_v, cands, w)
    losses[(roll.diverged_frame >= 0) | ~np.isfinite(losses)] = np.inf
    return losses


def _first_divergence(states, model, ref, actions) -> int:
    """Divergence frame of a stitched trajectory: one more replay would be
    needed to know it exactly, so check the stitched states directly (non-
    finite or reset time), which is what simulate_frames marks."""
    times = states[:, 0]
    expected = times[0] + ref.frame_dt * np.arange(states.shape[0])
    bad = ~np.isfinite(states).all(axis=1) | ~np.isclose(times, expected, rtol=0,
                                                           atol=ref.physics_dt * 1e-3)
    return int(np.argmax(bad)) if bad.any() else -1
