"""Snakemake script (rule minari): the dataset as Minari datasets, one per clip."""

import sys
from pathlib import Path

# This checkout's package, also when it is not installed (--use-conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from mocap_refine.logs import log_to  # noqa: E402

log_to(snakemake.log[0])

from mocap_refine.minari_export import export_minari  # noqa: E402

export_minari(snakemake.input[0], snakemake.output[0])
