"""Snakemake script (rule plot_clip): results/{clip}/comparison.png, .md, .html."""

import logging
import sys
from pathlib import Path

# This checkout's package, also when it is not installed (--use-conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from mocap_refine.logs import log_to  # noqa: E402

log_to(snakemake.log[0])

from mocap_refine import report  # noqa: E402

methods = list(snakemake.params.methods)
h5_paths = dict(zip(methods, map(str, snakemake.input.h5)))
marked = report.plot_clip(h5_paths, snakemake.output.png, clip=snakemake.wildcards.clip)
logging.info("comparison.png: %s", marked)
report.write_clip_tables(
    snakemake.input.comparison,
    snakemake.output.html,
    snakemake.output.md,
    snakemake.wildcards.clip,
    methods,
    h5_paths,
)
