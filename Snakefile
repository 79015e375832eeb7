"""Implicit Regularization in Deep Matrix Factorization (Arora, Cohen, Hu, Luo, NeurIPS 2019).

snakemake --cores all                                    # the default experiments (config.yaml)
snakemake --cores all --configfile presets/paper.yaml    # the paper-scale grid
snakemake --report results/default/report.html           # figures with captions (results/<name>/)
"""

from snakemake.utils import min_version

min_version("9.0")


# A --configfile given on the command line (e.g. presets/paper.yaml) replaces config.yaml
# rather than being merged into it: presets are complete configurations.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/theory.smk"
include: "workflow/rules/phase.smk"


rule all:
    default_target: True
    input:
        PLAN.targets(),
