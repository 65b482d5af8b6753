"""Snakemake script (rule plot_summary): results/summary.png, .md, .html."""

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

methods = list(snakemake.params.methods)
clips = list(snakemake.params.clips)
info = report.plot_summary(snakemake.input[0], snakemake.output.png, methods, clips)
logging.info("summary.png: %s", info)
report.write_summary_markdown(
    snakemake.input[0], snakemake.output.md, methods, clips, out_html=snakemake.output.html
)
