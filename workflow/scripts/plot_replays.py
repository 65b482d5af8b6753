"""Snakemake script (rule plot_replays): results/{clip}/replays.png."""

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
info = report.plot_keyframes(h5_paths, snakemake.output[0], clip=snakemake.wildcards.clip)
logging.info("replays.png: key frames %s, rows %s, %s x %s px", info["frames"], info["rows"], *info["size_px"])
