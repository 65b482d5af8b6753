# Comparison figures and tables (mocap_refine.report), registered for
# `snakemake --report results/report.html`: one page with a "Summary"
# category and one subcategory per clip under "Clips".


rule plot_clip:
    """One clip's comparison figure and metric table."""
    input:
        # Every configured method's evaluated result, in METHODS order.
        h5=lambda wc: expand("results/{clip}/{method}.h5", clip=wc.clip, method=METHODS),
        comparison="results/{clip}/comparison.csv",
    output:
        png=report(
            "results/{clip}/comparison.png",
            caption="../report/comparison_png.rst",
            category="Clips",
            subcategory="{clip}",
            labels={"clip": "{clip}", "figure": "comparison plots"},
        ),
        md="results/{clip}/comparison.md",
        html=report(
            "results/{clip}/comparison.html",
            caption="../report/comparison_table.rst",
            category="Clips",
            subcategory="{clip}",
            labels={"clip": "{clip}", "figure": "metric table"},
        ),
    log:
        "logs/report/plot_clip/{clip}.log",
    benchmark:
        "benchmarks/out/report/plot_clip/{clip}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=job_runtime_min,
        mem_mb=job_mem_mb,
    params:
        methods=METHODS,
    message:
        "plot_clip: clip {wildcards.clip}, methods {params.methods}"
    script:
        "../scripts/plot_clip.py"


rule plot_summary:
    """Every clip and method: heat maps, wall time, and the full metric table."""
    input:
        "results/summary.csv",
    output:
        png=report(
            "results/summary.png",
            caption="../report/summary_png.rst",
            category="Summary",
            labels={"clip": "all clips", "figure": "heat maps and wall time"},
        ),
        md="results/summary.md",
        html=report(
            "results/summary.html",
            caption="../report/summary_table.rst",
            category="Summary",
            labels={"clip": "all clips", "figure": "metric tables"},
        ),
    log:
        "logs/report/plot_summary.log",
    benchmark:
        "benchmarks/out/report/plot_summary.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=job_runtime_min,
        mem_mb=job_mem_mb,
    params:
        methods=METHODS,
        clips=CLIPS,
    message:
        "plot_summary: clips {params.clips}, methods {params.methods}"
    script:
        "../scripts/plot_summary.py"


rule plot_replays:
    """One clip's replays at a glance: side views of every method at key
    frames over the reference (the report shows this, not the animations)."""
    input:
        h5=lambda wc: expand("results/{clip}/{method}.h5", clip=wc.clip, method=METHODS),
    output:
        report(
            "results/{clip}/replays.png",
            caption="../report/replays_png.rst",
            category="Clips",
            subcategory="{clip}",
            labels={"clip": "{clip}", "figure": "replays at key frames"},
        ),
    log:
        "logs/report/plot_replays/{clip}.log",
    benchmark:
        "benchmarks/out/report/plot_replays/{clip}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=job_runtime_min,
        mem_mb=job_mem_mb,
    params:
        methods=METHODS,
    message:
        "plot_replays: clip {wildcards.clip}, methods {params.methods}"
    script:
        "../scripts/plot_replays.py"


rule animate:
    """Skeleton of one method's replay over the reference (ghost), as a GIF
    (a file next to the results; too large to embed in the report, whose
    replays.png caption names it)."""
    input:
        "results/{clip}/{method}.h5",
    output:
        "results/{clip}/{method}.gif",
    log:
        "logs/report/animate/{clip}/{method}.log",
    benchmark:
        "benchmarks/out/report/animate/{clip}/{method}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=job_runtime_min,
        mem_mb=job_mem_mb,
    message:
        "animate: replay of method {wildcards.method} on clip {wildcards.clip}"
    script:
        "../scripts/animate.py"
