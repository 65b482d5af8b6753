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
    threads: 1
    conda:
        "../../environment.yml"
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
    params:
        clips=CLIPS,
        methods=METHODS,
    log:
        "logs/gather/summary.log",
    benchmark:
        "benchmarks/out/gather/summary.tsv"
    threads: 1
    conda:
        "../../environment.yml"
    script:
        "../scripts/gather.py"
