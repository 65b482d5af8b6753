"""Snakemake script (rules comparison, summary): concatenate metric rows;
rule summary also records its clips and methods for the report."""

import sys
from pathlib import Path

# This checkout's package, also when it is not installed (--use-conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from mocap_refine.logs import log_to  # noqa: E402

log_to(snakemake.log[0])

from mocap_refine import pipeline  # noqa: E402

pipeline.gather([str(p) for p in snakemake.input], snakemake.output[0])

if "record" in snakemake.output.keys():
    from mocap_refine import run_record  # noqa: E402

    run_record.write_record(snakemake.output.record, snakemake.params.clips, snakemake.params.methods)
