rule gains:
    """The feedback controller around a method's replay: per-frame gains
    K_t (nu x 2nv) for closed-loop rollouts (mocap_refine.controller). Built
    on request, e.g. snakemake --cores 2 results/walk/gains/track.h5."""
    input:
        reference="results/{clip}/reference.h5",
        actions="results/{clip}/actions/{method}.h5",
    output:
        "results/{clip}/gains/{method}.h5",
    log:
        "logs/gains/{clip}/{method}.log",
    benchmark:
        "benchmarks/out/gains/{clip}/{method}.tsv"
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        runtime=job_runtime_min,
        mem_mb=job_mem_mb,
    message:
        "gains: feedback gains around method {wildcards.method} on clip {wildcards.clip}"
    script:
        "../scripts/gains.py"
