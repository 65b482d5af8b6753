# Entry point at the repository root: the workflow is workflow/Snakefile (the
# snakemake-workflows catalogue's layout). `include:` does not carry over the
# included file's default target, hence the second line.
include: "workflow/Snakefile"


workflow.default_target = "all"
