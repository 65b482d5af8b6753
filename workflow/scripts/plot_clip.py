"""Snakemake script (rule plot_clip): results/{clip}/comparison.png, .md, .html."""

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
h5_paths = dict(zip(methods, map(str, snakemake.input.h5)))
marked = report.plot_clip(h5_paths, snakemake.output.png, clip=snakemake.wildcards.clip)
logging.info("comparison.png: %s", marked)
report.write_clip_markdown(
    snakemake.input.comparison,
    snakemake.output.md,
    snakemake.wildcards.clip,
    methods,
    h5_paths,
    out_html=snakemake.output.html,
)
