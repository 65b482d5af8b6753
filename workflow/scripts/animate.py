"""Snakemake script (rule animate): results/{clip}/{method}.gif and _replay.html."""

import logging
import os
import sys
from pathlib import Path

# Everything this job prints, Python or C, goes to its log.
_log = open(snakemake.log[0], "w", buffering=1)
os.dup2(_log.fileno(), 1)
os.dup2(_log.fileno(), 2)
sys.stdout = sys.stderr = _log
logging.basicConfig(
    level=logging.INFO,
    stream=_log,
    format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    force=True,
)

try:
    from mocap_refine import report
except ImportError:  # not installed: use the package of this checkout
    sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
    from mocap_refine import report

clip, method = snakemake.wildcards.clip, snakemake.wildcards.method
info = report.animate_replay(snakemake.input[0], snakemake.output.gif)
logging.info("animation frames %s, fall frame %s", info["frames"], info["fall_frame"])
fall = info["fall_frame"]
report.gif_page(
    snakemake.output.gif,
    snakemake.output.html,
    f"{clip} / {method}: open-loop replay (colour) over the reference (grey)",
    "Never falls." if fall < 0 else f"Falls at frame {fall} (root height off by more than 0.25 m).",
)
