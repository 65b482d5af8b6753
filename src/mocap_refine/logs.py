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
    warnings go to the C stdout/stderr), to the job's log file."""
    log = open(path, "w", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    logging.basicConfig(level=logging.INFO, stream=log, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    route_mujoco_warnings()
