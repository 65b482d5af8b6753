"""Snakemake script (rule prepare): clip -> reference.h5 + diagnostics.csv."""

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

pipeline.prepare(
    snakemake.input[0],
    snakemake.output.reference,
    snakemake.output.diagnostics,
    ground_correction=bool(snakemake.params.ground_correction),
    cycles=int(snakemake.params.cycles),
    physics_hz=float(snakemake.params.physics_hz),
)
