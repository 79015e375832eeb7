"""The plan (dmfcore.plan) adapted to the rules: PLAN, the wildcard constraints and one-line
input functions. Planning itself is library code, tested in-process (tests/test_plan.py).
"""

import re
from pathlib import Path

from dmfcore.plan import data_paths, make_plan
from dmfcore.plan.make import synthetic_params
from dmfcore.plan.registry import DATASET_KINDS, DEVICE_PATTERN, PREDICTORS, enums
from dmfcore.provenance import code_fingerprint
from dmfcore.runspec import RUN_DIR

PLAN = make_plan(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
for _warning in PLAN.warnings:
    logger.warning(_warning)

OUT = PLAN.out
# the experiments with a phase diagram (a pattern that matches nothing when there are none)
PHASE_EXPERIMENTS = (
    "|".join(re.escape(name) for name in PLAN.phase_experiments()) or "(?!)"
)
ENUMS = enums()
SYNTHETIC_ID = DATASET_KINDS["synthetic"].identity
RATINGS_ID = DATASET_KINDS["ratings"].identity
FIXED_ID = DATASET_KINDS["fixed"].identity
# The code of each kind of job (its entry module in dmfcore and all that it imports): every job
# gets its fingerprint as a parameter, so Snakemake reruns exactly the jobs whose code changed
# (dmfcore.provenance); a change to training code reruns neither the data nor the baselines.
CODE = {
    part: code_fingerprint(part)
    for part in (
        "datasets",
        "real_data",
        "runs",
        "baselines",
        "tables",
        "theory",
        "plots",
        "phase",
    )
}


wildcard_constraints:
    dataset="|".join(kind.identity for kind in DATASET_KINDS.values()),
    seed="[0-9]+",
    n_obs="[0-9]+",
    depth="[0-9]+",
    max_iters="[0-9]+",
    problem="|".join(ENUMS["problem"]),
    init="|".join(ENUMS["init"]),
    optimizer="|".join(ENUMS["optimizer"]),
    init_scale="[0-9.e+-]+",
    lr="[0-9.e+-]+",
    loss_threshold="[0-9.e+-]+",
    device=DEVICE_PATTERN,
    dtype="|".join(ENUMS["dtype"]),
    experiment="[A-Za-z][A-Za-z0-9_-]*",
    figure="|".join(ENUMS["figure"]),


def data_inputs(wildcards):
    return data_paths(dict(wildcards.items()))


def ratings_input(wildcards):
    return PLAN.ratings_file(PLAN.source_of(wildcards.dataset).name)


def ratings_params(wildcards):
    return PLAN.ratings_params(wildcards.dataset)


def fixed_params(wildcards):
    return PLAN.fixed_params(wildcards.dataset)


def download_params(wildcards):
    return PLAN.download_params(wildcards.name)


def ground_truth_params(wildcards):
    return synthetic_params(wildcards.dataset)


def sensing_mem_mb(wildcards):
    return PLAN.sensing_mem_mb(wildcards.problem, wildcards.dataset, wildcards.n_obs)


def nuclear_norm_mem_mb(wildcards):
    return PLAN.nuclear_norm_mem_mb(
        wildcards.problem, wildcards.dataset, wildcards.n_obs
    )


def training_settings(wildcards):
    return PLAN.training_settings(dict(wildcards.items()))


def metrics_files(wildcards):
    return PLAN.metrics_files(wildcards.experiment)


def trajectory_files(wildcards):
    return PLAN.trajectory_files(wildcards.experiment)


def recording(wildcards):
    return PLAN.recording_of(wildcards.experiment)


def phase_params(wildcards):
    return PLAN.phase_params(wildcards.experiment)


def missing_data(wildcards):
    return PLAN.missing[wildcards.experiment]
