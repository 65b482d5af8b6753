# mocap-refine: DeepMimic motion-capture clips -> MuJoCo humanoid actions ->
# refinement methods -> metrics. See README.md.
#
#   snakemake --cores 8 all
#   snakemake --cores 2 results/dance_a/baseline.h5
#   snakemake --cores 8 all --config 'clips=["walk"]' 'methods=["baseline","invdyn"]'


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/import.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/actions.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/gains.smk"
include: "workflow/rules/gather.smk"
include: "workflow/rules/report.smk"


localrules:
    all,


rule all:
    input:
        all_outputs(),
    default_target: True
