rule prepare:
    """Convert a clip to the MuJoCo humanoid's qpos/qvel (Z-up, optional ground
    correction and cycles) and write per-frame diagnostics (lowest foot
    height, joint-limit violations)."""
    input:
        "motions/{clip}.txt",
    output:
        reference="results/{clip}/reference.h5",
        diagnostics="results/{clip}/diagnostics.csv",
    log:
        "logs/prepare/{clip}.log",
    benchmark:
        "benchmarks/out/prepare/{clip}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        runtime=job_runtime_min,
        mem_mb=job_mem_mb,
    params:
        ground_correction=config["clip_options"]["ground_correction"],
        cycles=clip_cycles,
        physics_hz=config["physics"]["target_hz"],
    message:
        "prepare: clip {wildcards.clip} (reference and diagnostics; no method)"
    script:
        "../scripts/prepare.py"
