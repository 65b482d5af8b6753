rule dataset:
    """The policy-ready dataset of the configured clips for one method's
    actions (mocap_refine.dataset, docs/dataset.md). Built on request, e.g.
    snakemake --cores 2 results/dataset/track.h5."""
    input:
        unpack(dataset_inputs),
    output:
        "results/dataset/{method}.h5",
    log:
        "logs/dataset/{method}.log",
    benchmark:
        "benchmarks/out/dataset/{method}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=job_runtime_min,
        mem_mb=job_mem_mb,
    params:
        clips=CLIPS,
        settings=lambda wildcards: config.get("dataset") or {},
    message:
        "dataset: clips {params.clips} with method {wildcards.method}"
    script:
        "../scripts/dataset.py"


rule minari:
    """The dataset as Minari datasets, one per clip
    (mocap_refine/{clip}/{method}-v0), replayed in the real environment
    mocap_refine/Tracking-v0 (mocap_refine.minari_export). On request."""
    input:
        "results/dataset/{method}.h5",
    output:
        directory("results/dataset/minari/{method}"),
    log:
        "logs/minari/{method}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=job_runtime_min,
        mem_mb=job_mem_mb,
    message:
        "minari: one Minari dataset per clip from method {wildcards.method}'s dataset"
    script:
        "../scripts/minari.py"
