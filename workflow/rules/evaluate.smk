rule evaluate:
    """Replay a method's actions from the reference state of frame 0, compute
    the metrics, and write results/{clip}/{method}.h5 and its metric row."""
    input:
        reference="results/{clip}/reference.h5",
        actions="results/{clip}/actions/{method}.h5",
    output:
        h5="results/{clip}/{method}.h5",
        csv="results/{clip}/{method}.csv",
    log:
        "logs/evaluate/{clip}/{method}.log",
    benchmark:
        "benchmarks/out/evaluate/{clip}/{method}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=job_runtime_min,
        mem_mb=job_mem_mb,
    message:
        "evaluate: replay of method {wildcards.method} on clip {wildcards.clip}"
    script:
        "../scripts/evaluate.py"
