rule actions:
    """Compute one method's actions for one clip. Parameters are the method's
    config block; feedback, gradient and mpc start from the actions of their
    `init` method when it is set."""
    input:
        unpack(actions_input),
    output:
        "results/{clip}/actions/{method}.h5",
    log:
        "logs/actions/{clip}/{method}.log",
    benchmark:
        "benchmarks/out/actions/{clip}/{method}.tsv"
    conda:
        "../../environment.yml"
    threads: method_threads
    resources:
        runtime=job_runtime_min,
        mem_mb=job_mem_mb,
    params:
        method=method_params,
    message:
        "actions: method {wildcards.method} on clip {wildcards.clip}"
    script:
        "../scripts/actions.py"
