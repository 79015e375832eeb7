rule ground_truth:
    output:
        "results/data/{dataset}/seed{seed}/ground_truth.npz",
    log:
        "results/data/{dataset}/seed{seed}/ground_truth.log",
    wildcard_constraints:
        dataset=SYNTHETIC_ID,
    # first: the data unlock the training jobs, which a GPU runs while the CPUs solve baselines
    priority: 2
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=5,
        mem_mb=500,
    params:
        synthetic=ground_truth_params,
        code=CODE["datasets"],
    script:
        "../scripts/ground_truth.py"


rule observations:
    input:
        ground_truth="results/data/{dataset}/seed{seed}/ground_truth.npz",
    output:
        "results/data/{dataset}/seed{seed}/{problem}_n{n_obs}.npz",
    log:
        "results/data/{dataset}/seed{seed}/{problem}_n{n_obs}.log",
    wildcard_constraints:
        dataset=SYNTHETIC_ID,
    priority: 2
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=5,
        # sensing stores m x d1 x d2 measurement matrices
        mem_mb=lambda wc: 500 + sensing_mem_mb(wc),
    params:
        code=CODE["datasets"],
    script:
        "../scripts/observations.py"


# Observation sets made together, one job per (problem, dataset, seed): those of experiments
# whose runs train in batches over n_obs (dmfcore.plan.make.SetBatch; a phase diagram's grid).
# Each file and log is where the observations rule would write it.
for batch in PLAN.set_batches.values():
    if batch.rule != "observations":
        continue

    rule:
        name:
            batch.name
        input:
            batch.inputs(),
        output:
            batch.outputs(),
        log:
            batch.logs(),
        priority: 2
        group:
            "data"
        conda:
            "../../envs/dmf.yaml"
        resources:
            runtime=PLAN.set_batch_runtime(batch),
            mem_mb=PLAN.set_batch_mem_mb(batch),
        params:
            members=batch.members(),
            code=CODE["datasets"],
        script:
            "../scripts/observations_batch.py"


# A ratings file split into the training set and the test set (the rest), stored like any
# observation set.
rule ratings_split:
    input:
        ratings=ratings_input,
    output:
        "results/data/{dataset}/seed{seed}/completion_n{n_obs}.npz",
    log:
        "results/data/{dataset}/seed{seed}/completion_n{n_obs}.log",
    wildcard_constraints:
        dataset=RATINGS_ID,
    priority: 2
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=5,
        mem_mb=1000,
    params:
        dataset=ratings_params,
        code=CODE["real_data"],
    script:
        "../scripts/ratings_split.py"


# Only for a dataset with `download: true`: GroupLens' archive, checked against its SHA-256.
rule download_ratings:
    output:
        "results/downloads/{name}/u.data",
    log:
        "results/downloads/{name}/download.log",
    retries: 2
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=10,
        mem_mb=500,
    params:
        source=download_params,
    script:
        "../scripts/download_ratings.py"


# A fixed small matrix given entry by entry in the config (dataset kind fixed), stored like any
# observation set.
rule fixed_observations:
    output:
        "results/data/{dataset}/seed{seed}/completion_n{n_obs}.npz",
    log:
        "results/data/{dataset}/seed{seed}/completion_n{n_obs}.log",
    wildcard_constraints:
        dataset=FIXED_ID,
    priority: 2
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=5,
        mem_mb=500,
    params:
        fixed=fixed_params,
        code=CODE["datasets"],
    script:
        "../scripts/fixed_observations.py"
