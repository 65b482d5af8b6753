rule comparison:
    """One clip's metric rows, one per configured method."""
    input:
        clip_metric_csvs,
    output:
        "results/{clip}/comparison.csv",
    log:
        "logs/gather/{clip}.log",
    benchmark:
        "benchmarks/out/gather/{clip}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=job_runtime_min,
        mem_mb=job_mem_mb,
    message:
        f"comparison: clip {{wildcards.clip}}, methods {' '.join(METHODS)}"
    script:
        "../scripts/gather.py"


rule summary:
    """Every clip's metric rows (clip x method), and the clips and methods of
    this run for `snakemake --report` (mocap_refine.run_record)."""
    input:
        all_metric_csvs,
    output:
        "results/summary.csv",
        record="results/last_run.yaml",
    log:
        "logs/gather/summary.log",
    benchmark:
        "benchmarks/out/gather/summary.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=job_runtime_min,
        mem_mb=job_mem_mb,
    params:
        clips=CLIPS,
        methods=METHODS,
    message:
        "summary: clips {params.clips}, methods {params.methods}"
    script:
        "../scripts/gather.py"
