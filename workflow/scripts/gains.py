"""Snakemake script (rule gains): feedback gains around a method's replay."""

import sys
from pathlib import Path

# This checkout's package, also when it is not installed (--use-conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from mocap_refine.logs import log_to  # noqa: E402

log_to(snakemake.log[0])

from mocap_refine import pipeline  # noqa: E402

pipeline.compute_gains(
    snakemake.input.reference,
    snakemake.input.actions,
    snakemake.output[0],
    threads=snakemake.threads,
)
