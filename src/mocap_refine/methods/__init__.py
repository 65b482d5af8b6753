"""Action methods and their registry.

Each method turns a reference trajectory into per-frame actions (T, nu) in
[-1, 1]; the iterative ones also return a history table. Every fact about a
method that other parts need (its function, its typed settings, the threads
it uses well, its colour, whether it warm-starts from another method) is in
its :class:`MethodSpec` in ``REGISTRY``: the workflow rules, the CLI, the
config checks and the report read it from there.

Every method is called as ``fn(problem, settings, init_actions) ->
MethodResult`` with a :class:`~mocap_refine.problem.TrackingProblem` and its
settings dataclass (:mod:`mocap_refine.settings`); :func:`run_method` builds
both from a config block.
"""

from __future__ import annotations

import importlib
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


@dataclass(frozen=True)
class MethodSpec:
    """One method: where its function lives, the name of its settings
    dataclass (in the same module), whether it can start from
    another method's actions (config key ``init``), the threads it uses well
    (mujoco.rollout batches), its colour in figures and a one-line summary."""
    name: str
    module: str
    function: str
    settings: str
    warm_started: bool
    threads: int
    color: str
    summary: str

    def load(self):
        return getattr(importlib.import_module(self.module, __name__), self.function)

    def settings_class(self):
        return getattr(importlib.import_module(self.module, __name__), self.settings)


# threads: a second thread makes track 1.5 and mpc 1.6 times faster on walk
# (docs/results/data/threads_walk.csv, whose README gives the command), less
# than a second job on the other core does, so both take one and Snakemake
# runs two jobs at once on two cores.
REGISTRY: dict[str, MethodSpec] = {spec.name: spec for spec in (
    MethodSpec("baseline", ".baseline", "baseline", "BaselineSettings", False, 1, "#7f7f7f",
               "PD actions towards the next reference pose (the reference point)"),
    MethodSpec("feedback", ".feedback", "feedback", "FeedbackSettings", True, 1, "#1f77b4",
               "iterative PD corrections of the replay error, window by window"),
    MethodSpec("gradient", ".gradient", "gradient", "GradientSettings", True, 4, "#2ca02c",
               "receding-window Gauss-Newton with recovery levels and a second pass (previous default)"),
    MethodSpec("mpc", ".mpc", "mpc", "MPCSettings", True, 1, "#ff7f0e",
               "sampling MPC (CEM/MPPI) around the init actions"),
    MethodSpec("invdyn", ".invdyn", "invdyn", "InvdynSettings", False, 1, "#9467bd",
               "inverse dynamics of the reference, frame by frame"),
    MethodSpec("track", ".track", "track", "TrackSettings", True, 1, "#d62728",
               "receding-horizon iLQR tracker (0.5 s windows, closed-loop forward passes with feedback gains)"),
)}
METHODS = tuple(REGISTRY)
# Methods that may start from another method's actions (config key `init`).
WARM_STARTED = tuple(name for name, spec in REGISTRY.items() if spec.warm_started)


def get_spec(name: str) -> MethodSpec:
    if name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    return REGISTRY[name]


def method_settings(name: str, params: dict | None):
    """The typed settings of method `name` from its config block."""
    from ..settings import from_block
    return from_block(get_spec(name).settings_class(), params, name)


def run_method(name: str, model, ref, params: dict | None, init_actions=None, threads: int = 1) -> MethodResult:
    """Run method `name` on reference `ref` with its config block `params`."""
    from ..problem import TrackingProblem
    fn = get_spec(name).load()
    return fn(TrackingProblem.build(model, ref, threads), method_settings(name, params), init_actions)


def get_method(name: str):
    """``fn(model, ref, params, init_actions=None, threads=1) -> MethodResult``."""
    get_spec(name)

    def fn(model, ref, params, init_actions=None, threads=1):
        return run_method(name, model, ref, params, init_actions, threads)
    return fn


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
