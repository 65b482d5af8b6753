"""Snakemake script (rule actions): one method's actions for one clip."""

import sys
from pathlib import Path

# This checkout's package, also when it is not installed (--use-conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from mocap_refine.logs import log_to  # noqa: E402

log_to(snakemake.log[0])

from mocap_refine import pipeline  # noqa: E402

pipeline.compute_actions(
    snakemake.input.reference,
    snakemake.wildcards.method,
    dict(snakemake.params.method),
    snakemake.output[0],
    init_h5=snakemake.input.get("init"),
    threads=snakemake.threads,
)
