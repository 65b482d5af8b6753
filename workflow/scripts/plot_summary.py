"""Snakemake script (rule plot_summary): results/summary.png, .md, .html."""

import logging
import sys
from pathlib import Path

# This checkout's package, also when it is not installed (--use-conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from mocap_refine.logs import log_to  # noqa: E402

log_to(snakemake.log[0])

from mocap_refine import report  # noqa: E402

methods = list(snakemake.params.methods)
clips = list(snakemake.params.clips)
info = report.plot_summary(snakemake.input[0], snakemake.output.png, methods, clips)
logging.info("summary.png: %s", info)
report.write_summary_tables(
    snakemake.input[0], snakemake.output.html, snakemake.output.md, methods, clips
)
