"""Snakemake script (rule actions): one method's actions for one clip."""

import logging
import os
import sys
from pathlib import Path

# Everything this job prints, Python or C (MuJoCo warnings), goes to its log.
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
    from mocap_refine import pipeline
except ImportError:  # not installed: use the package of this checkout
    sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
    from mocap_refine import pipeline

pipeline.compute_actions(
    snakemake.input.reference,
    snakemake.wildcards.method,
    dict(snakemake.params.method),
    snakemake.output[0],
    init_h5=snakemake.input.get("init"),
    threads=snakemake.threads,
)
