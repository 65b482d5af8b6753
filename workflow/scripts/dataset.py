"""Snakemake script (rule dataset): the policy-ready dataset of the configured clips."""

import sys
from pathlib import Path

# This checkout's package, also when it is not installed (--use-conda).
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from mocap_refine.logs import log_to  # noqa: E402

log_to(snakemake.log[0])

from mocap_refine.dataset import ClipSource, build_dataset  # noqa: E402
from mocap_refine.dataset import DatasetSettings  # noqa: E402
from mocap_refine.settings import from_block  # noqa: E402

sources = [
    ClipSource(clip, Path(reference), Path(gains))
    for clip, reference, gains in zip(
        snakemake.params.clips, snakemake.input.reference, snakemake.input.gains
    )
]
build_dataset(
    sources,
    snakemake.output[0],
    from_block(DatasetSettings, dict(snakemake.params.settings), "dataset"),
    method=snakemake.wildcards.method,
)
