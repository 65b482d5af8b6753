"""Cluster resources of the workflow's jobs (``runtime`` in minutes, ``mem_mb``)
from measured figures.

The figures are in ``workflow/resources.yaml``, written by
``benchmarks/rule_resources.py`` from Snakemake benchmark files of real runs:
per rule (and per method for rules with a ``{method}`` wildcard) the largest
wall seconds per second of clip, or per clip of the run for the gathering
rules, and the largest peak memory. Here they are scaled to the job's clip
(its length read from the job's first input file) and given a safety margin,
because a cluster node may be slower or busier than the measuring machine.
workflow/rules/common.smk calls :func:`runtime_min` and :func:`mem_mb` for every
rule; threads come from the method registry.
"""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

import yaml

# Wall time and memory on the cluster: measured figure x factor, at least the floor.
RUNTIME_FACTOR = 3.0
RUNTIME_FLOOR_MIN = 2
MEM_FACTOR = 1.5
MEM_FLOOR_MB = 512
# Unmeasured rule (e.g. one added after the figures were written): generous.
UNMEASURED = {"runtime_min": 60, "mem_mb": 4096}
# Clip length assumed when a job's inputs do not tell it (csv inputs only).
DEFAULT_CLIP_S = 5.0


def load_figures(path: str | os.PathLike) -> dict:
    """rule -> method ('*' for rules without one) -> figures; {} if the file is missing."""
    path = Path(path)
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def figure(figures: dict, rule: str, method: str | None) -> dict | None:
    """The rule's measured figures for ``method``. A method the figures do not
    list takes the costliest measured method of the rule (a new method is
    rarely cheaper than every measured one); None for an unmeasured rule."""
    per_method = figures.get(rule)
    if not per_method:
        return None
    key = method if method is not None else "*"
    if key in per_method:
        return per_method[key]
    if "*" in per_method:
        return per_method["*"]
    return max(per_method.values(), key=lambda f: (f.get("s_per_clip_s", 0), f.get("s_per_run_clip", 0)))


def clip_seconds(path: str | os.PathLike) -> float | None:
    """Length in seconds of the clip a workflow file holds: a clip
    (``motions/*.txt``: sum of frame durations), a reference (``qpos`` rows x
    ``frame_dt``) or a result (``actions`` rows + 1, x ``frame_dt``); None for
    other files. A missing file raises FileNotFoundError naming it (Snakemake
    then evaluates the resource again when the file exists). A file that
    cannot be read (truncated, garbage, not a clip) also gives None: the job
    gets the default length's resources, runs, and its own checked read
    reports the file by name with what to do (a resource function's error
    would be an InputFunctionException with h5py's traceback, no file named)."""
    path = Path(path)
    if path.suffix not in (".txt", ".h5"):
        return None
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "clip length needs this file", str(path))
    try:
        if path.suffix == ".txt":
            frames = json.loads(path.read_text(encoding="utf-8")).get("Frames", [])
            seconds = float(sum(frame[0] for frame in frames[:-1]))
            return seconds if math.isfinite(seconds) and seconds > 0 else None
        import h5py

        with h5py.File(path, "r") as f:
            dt = f.attrs.get("frame_dt")
            if dt is None:
                return None
            if "qpos" in f:
                seconds = float(f["qpos"].shape[0] * dt)
            elif "actions" in f:
                seconds = float((f["actions"].shape[0] + 1) * dt)
            else:
                return None
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError):
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def job_clip_seconds(input_files) -> float | None:
    """Clip length from the first input file that tells it (see :func:`clip_seconds`)."""
    for path in input_files:
        seconds = clip_seconds(path)
        if seconds is not None:
            return seconds
    return None


def runtime_min(fig: dict | None, clip_s: float | None, n_clips: int) -> int:
    """Minutes for the job: the measured seconds per clip second x the clip's
    length (or per clip of the run x the run's clips), x RUNTIME_FACTOR."""
    if fig is None:
        return UNMEASURED["runtime_min"]
    if "s_per_clip_s" in fig:
        seconds = fig["s_per_clip_s"] * (clip_s if clip_s is not None else DEFAULT_CLIP_S)
    else:
        seconds = fig.get("s_per_run_clip", 0.0) * max(n_clips, 1)
    return max(RUNTIME_FLOOR_MIN, math.ceil(RUNTIME_FACTOR * seconds / 60))


def mem_mb(fig: dict | None) -> int:
    """MB for the job: the measured peak x MEM_FACTOR, at least MEM_FLOOR_MB."""
    if fig is None or "max_rss_mb" not in fig:
        return UNMEASURED["mem_mb"]
    return max(MEM_FLOOR_MB, math.ceil(MEM_FACTOR * fig["max_rss_mb"] / 64) * 64)
