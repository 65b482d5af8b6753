"""Logging for workflow jobs."""

from __future__ import annotations

import logging
import os
import sys


def route_mujoco_warnings() -> None:
    """Send MuJoCo's warnings (e.g. "Nan, Inf or huge value in QACC", also
    from rollout threads) to Python logging (logger "mujoco") instead of
    MuJoCo's default MUJOCO_LOG.TXT in the working directory."""
    import mujoco

    logger = logging.getLogger("mujoco")
    mujoco.set_mju_user_warning(lambda message: logger.warning(message.strip()))


def log_to(path) -> None:
    """Send everything this process prints, from Python or from C (MuJoCo's
    warnings go to the C stdout/stderr), to the job's log file. An error
    that ends the job is also shown where Snakemake shows it (the job's
    original stderr): one line per problem (the package's errors name their
    file and what to do), its traceback only in the log."""
    terminal = os.fdopen(os.dup(2), "w", buffering=1)
    log = open(path, "w", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    logging.basicConfig(level=logging.INFO, stream=log, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    route_mujoco_warnings()
    default = sys.excepthook

    def job_error(etype, value, tb):
        default(etype, value, tb)  # the traceback, in the log
        if issubclass(etype, (ValueError, OSError)):
            # ClipError, ConfigError, SettingsError, FileProblem (ValueError)
            # and WriteError (OSError) name their file and what to do.
            lines = [ln.strip() for ln in str(value).splitlines() if ln.strip()] or [etype.__name__]
        elif issubclass(etype, KeyboardInterrupt):
            lines = ["interrupted; outputs are written whole or not at all, rerun to finish"]
        else:
            lines = [f"unexpected {etype.__name__}: {value} (a bug; the traceback is in {path})"]
        for line in lines:
            print(f"mocap-refine: error: {line}", file=log)
            print(f"mocap-refine: error: {line} (log: {path})", file=terminal)

    sys.excepthook = job_error
