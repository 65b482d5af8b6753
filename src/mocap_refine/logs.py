"""Logging for workflow jobs."""

from __future__ import annotations

import logging
import os
import sys


def log_to(path) -> None:
    """Send everything this process prints, from Python or from C (MuJoCo's
    warnings go to the C stdout/stderr), to the job's log file."""
    log = open(path, "w", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    logging.basicConfig(level=logging.INFO, stream=log, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
