"""Snakemake script (rule prepare): clip -> reference.h5 + diagnostics.csv."""

import sys
from pathlib import Path

# This checkout's package, also when it is not installed (--use-conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from mocap_refine.logs import log_to  # noqa: E402

log_to(snakemake.log[0])

from mocap_refine import pipeline  # noqa: E402

pipeline.prepare(
    snakemake.input[0],
    snakemake.output.reference,
    snakemake.output.diagnostics,
    ground_correction=bool(snakemake.params.ground_correction),
    cycles=int(snakemake.params.cycles),
    physics_hz=float(snakemake.params.physics_hz),
)
