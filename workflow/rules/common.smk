import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("8.0")

try:
    from mocap_refine import config as mr_config, resources as mr_resources, run_record
except ImportError:
    # Not installed: use the package of this checkout (<repo>/src, two levels
    # above this file, wherever Snakemake runs).
    sys.path.insert(
        0, str(Path(workflow.current_basedir.get_path_or_uri()) / "../../src")
    )
    from mocap_refine import config as mr_config, resources as mr_resources, run_record


# ---- report of the last run -------------------------------------------------
# `snakemake --report results/report.html` (no --config needed) reports the
# clips and methods of the last run, recorded by rule summary in
# results/last_run.yaml, instead of the configured ones: the same command works
# after a run on a subset. --config clips/methods naming another run stop with
# the command to run; so does a missing result (checked at the end of this file).
REPORT_ONLY = run_record.is_report_invocation(sys.argv)
if REPORT_ONLY:
    _cli_config = dict(
        getattr(getattr(workflow, "config_settings", None), "config", None) or {}
    )
    try:
        _recorded = run_record.report_selection(
            run_record.read_record(run_record.RECORD_PATH), _cli_config
        )
    except mr_config.ConfigError as err:
        raise WorkflowError(str(err)) from None
    if _recorded is not None:
        config["clips"], config["methods"] = _recorded
    # Name the clips and methods in the suggested command unless they are the configured ones.
    REPORT_EXPLICIT = (
        _recorded is not None or "clips" in _cli_config or "methods" in _cli_config
    )


# ---- configuration --------------------------------------------------------
# 1. types, ranges and defaults (JSON schema), 2. meaning (names that exist,
# init links): every problem is reported, one per line.

try:
    # Same schema, one line per problem (snakemake's own message is verbose).
    # source_path: relative to this file, also when the workflow is used as a
    # module (snakedeploy) from another directory or a git repository.
    mr_config.validate_schema(
        config, workflow.source_path("../schemas/config.schema.yaml")
    )
    mr_config.check_config(config, motions_dir="motions")
except mr_config.ConfigError as err:
    raise WorkflowError(str(err)) from None

validate(config, schema="../schemas/config.schema.yaml")

CLIPS = list(config["clips"])
METHODS = list(config["methods"])
# Methods whose actions are computed: the configured ones plus their init methods.
ACTION_METHODS = mr_config.required_actions(config)
DEEPMIMIC_CLIPS = list(mr_config.known_clips())
KNOWN_METHODS = list(mr_config.known_methods())

# Threads per method from the method registry (methods that batch rollouts
# on several threads); Snakemake lowers this to --cores when fewer are available.
METHOD_THREADS = mr_config.method_threads()


wildcard_constraints:
    clip=r"[A-Za-z0-9][A-Za-z0-9_\-]*",
    method="|".join(KNOWN_METHODS),


# ---- input functions and parameters ---------------------------------------


def all_outputs():
    """Everything `rule all` asks for."""
    outputs = []
    for clip in CLIPS:
        outputs += [
            f"results/{clip}/reference.h5",
            f"results/{clip}/diagnostics.csv",
            f"results/{clip}/comparison.csv",
        ]
        for method in METHODS:
            outputs += [f"results/{clip}/{method}.h5", f"results/{clip}/{method}.csv"]
        # report.smk: the clip's comparison figure and tables, its replays at
        # key frames, and every method's replay animation.
        outputs += [f"results/{clip}/comparison.{ext}" for ext in ("png", "md", "html")]
        outputs.append(f"results/{clip}/replays.png")
        outputs += [f"results/{clip}/{m}.gif" for m in METHODS]
    outputs.append("results/summary.csv")
    outputs += [f"results/summary.{ext}" for ext in ("png", "md", "html")]
    return outputs


def actions_input(wildcards):
    """The clip's reference, plus the init method's actions when `init` is set."""
    inputs = {"reference": f"results/{wildcards.clip}/reference.h5"}
    init = mr_config.init_method(config, wildcards.method)
    if init is not None:
        inputs["init"] = f"results/{wildcards.clip}/actions/{init}.h5"
    return inputs


def method_params(wildcards):
    """The method's config block: a change reruns only that method."""
    return mr_config.method_params(config, wildcards.method)


def method_threads(wildcards):
    return METHOD_THREADS[wildcards.method]


# ---- cluster resources ------------------------------------------------------
# runtime (minutes) and mem_mb of every rule from measured figures
# (workflow/resources.yaml, written by benchmarks/rule_resources.py), scaled
# to the job's clip: mocap_refine.resources. Threads: METHOD_THREADS.
RULE_FIGURES = mr_resources.load_figures(workflow.source_path("../resources.yaml"))


def job_runtime_min(wildcards, input, rulename):
    """Minutes: the rule's (and method's) measured seconds per clip second x
    the clip's length, read from the job's first input (evaluated again once
    that input exists)."""
    fig = mr_resources.figure(
        RULE_FIGURES, rulename, getattr(wildcards, "method", None)
    )
    return mr_resources.runtime_min(
        fig, mr_resources.job_clip_seconds(input), len(CLIPS)
    )


def job_mem_mb(wildcards, rulename):
    """MB: the rule's (and method's) measured peak memory with a margin."""
    return mr_resources.mem_mb(
        mr_resources.figure(RULE_FIGURES, rulename, getattr(wildcards, "method", None))
    )


def clip_cycles(wildcards):
    return mr_config.clip_cycles(config, wildcards.clip)


def clip_metric_csvs(wildcards):
    return expand("results/{clip}/{method}.csv", clip=wildcards.clip, method=METHODS)


def all_metric_csvs(wildcards):
    return expand("results/{clip}/{method}.csv", clip=CLIPS, method=METHODS)


def dataset_inputs(wildcards):
    """Per configured clip, in config order: its reference and the gains of
    the method's actions. A split that leaves no training clip stops here,
    before any job runs."""
    try:
        mr_config.dataset_split(config)
    except mr_config.ConfigError as err:
        raise WorkflowError(str(err)) from None
    return {
        "reference": expand("results/{clip}/reference.h5", clip=CLIPS),
        "gains": expand(
            "results/{clip}/gains/{method}.h5", clip=CLIPS, method=wildcards.method
        ),
    }


if REPORT_ONLY:
    _missing = [p for p in all_outputs() if not Path(p).exists()]
    if _missing:
        raise WorkflowError(
            run_record.missing_files_message(_missing, CLIPS, METHODS, REPORT_EXPLICIT)
        )
