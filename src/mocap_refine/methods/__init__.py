"""Action methods. Each takes the reference trajectory and returns per-frame
actions (T, nu) in [-1, 1]; the iterative ones also return a history table.

Registry: METHODS maps a method name to its function
``fn(model, ref, params, init_actions, threads) -> MethodResult``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MethodResult:
    """actions: (T, nu) in [-1, 1]. history: list of dicts (iteration,
    loss, err_full_rad, ..., seconds) or empty. datasets: extra arrays to
    store in the output file (path -> array), e.g. /invdyn/root_wrench."""
    actions: np.ndarray
    history: list = field(default_factory=list)
    datasets: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def warm_start(model, ref, init_actions, method: str) -> np.ndarray:
    """The (T, nu) actions a warm-started method begins from: `init_actions`
    clipped to [-1, 1], or the PD baseline when None; a wrong shape is a
    ValueError naming the method."""
    from .baseline import pd_actions
    T = ref.n_frames - 1
    if init_actions is None:
        return pd_actions(model, ref.qpos, ref.qvel)
    actions = np.clip(np.asarray(init_actions, dtype=float), -1.0, 1.0)
    if actions.shape != (T, model.nu):
        raise ValueError(f"{method}: init actions have shape {actions.shape}, expected {(T, model.nu)}")
    return actions


def _registry():
    from .baseline import baseline
    from .feedback import feedback
    from .gradient import gradient
    from .invdyn import invdyn
    from .mpc import mpc
    return {"baseline": baseline, "feedback": feedback, "gradient": gradient, "mpc": mpc, "invdyn": invdyn}


METHODS = ("baseline", "feedback", "gradient", "mpc", "invdyn")
# Methods that start from another method's actions (config key `init`).
WARM_STARTED = ("feedback", "gradient", "mpc")


def get_method(name: str):
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    return _registry()[name]
