rule import_clip:
    """Copy a DeepMimic humanoid clip from PyPI pybullet's pybullet_data folder
    into motions/, after validating it. Runs only for DeepMimic names whose
    file is missing: a file already in motions/ (imported or your own) is used
    as it is and never overwritten."""
    output:
        "motions/{clip}.txt",
    log:
        "logs/import_clip/{clip}.log",
    benchmark:
        "benchmarks/out/import_clip/{clip}.tsv"
    wildcard_constraints:
        clip="|".join(DEEPMIMIC_CLIPS),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=job_runtime_min,
        mem_mb=job_mem_mb,
    message:
        "import_clip: DeepMimic clip {wildcards.clip} into motions/ (no method)"
    script:
        "../scripts/import_clip.py"
