"""Snakemake script (rule animate): results/{clip}/{method}.gif and _replay.html."""

import logging
import sys
from pathlib import Path

# This checkout's package, also when it is not installed (--use-conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from mocap_refine.logs import log_to  # noqa: E402

log_to(snakemake.log[0])

from mocap_refine import report  # noqa: E402

clip, method = snakemake.wildcards.clip, snakemake.wildcards.method
info = report.animate_replay(snakemake.input[0], snakemake.output.gif)
logging.info("animation frames %s, fall frame %s", info["frames"], info["fall_frame"])
fall = info["fall_frame"]
why = {
    "height": "root height off the reference by more than 0.25 m",
    "orientation": "root orientation off the reference by more than 60 degrees",
    "contact": "a body other than the feet touches the floor where the reference's does not",
    "diverged": "the physics diverged",
}.get(info.get("fall_reason", ""), "see README, Metrics")
report.gif_page(
    snakemake.output.gif,
    snakemake.output.html,
    f"{clip} / {method}: open-loop replay (colour) over the reference (grey)",
    "Never falls." if fall < 0 else f"Falls at frame {fall} ({why}).",
)
