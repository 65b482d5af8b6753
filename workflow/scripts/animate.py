"""Snakemake script (rule animate): results/{clip}/{method}.gif."""

import logging
import sys
from pathlib import Path

# This checkout's package, also when it is not installed (--use-conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from mocap_refine.logs import log_to  # noqa: E402

log_to(snakemake.log[0])

from mocap_refine import report  # noqa: E402

info = report.animate_replay(snakemake.input[0], snakemake.output[0])
logging.info("animation frames %s, fall frame %s (%s)", info["frames"], info["fall_frame"],
             info.get("fall_reason") or "never falls")
