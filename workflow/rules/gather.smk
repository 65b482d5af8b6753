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
    """Every clip's metric rows (clip x method)."""
    input:
        all_metric_csvs,
    output:
        "results/summary.csv",
    log:
        "logs/gather/summary.log",
    benchmark:
        "benchmarks/out/gather/summary.tsv"
    threads: 1
    conda:
        "../../environment.yml"
    script:
        "../scripts/gather.py"
