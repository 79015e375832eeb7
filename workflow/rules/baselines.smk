rule min_nuclear_norm:
    input:
        unpack(data_inputs),
    output:
        matrix="results/runs/{problem}/{dataset}/n{n_obs}/seed{seed}/nuclear_norm/matrix.npz",
        metrics="results/runs/{problem}/{dataset}/n{n_obs}/seed{seed}/nuclear_norm/metrics.json",
    log:
        "results/runs/{problem}/{dataset}/n{n_obs}/seed{seed}/nuclear_norm/run.log",
    conda:
        "../../envs/dmf.yaml"
    threads: 1
    resources:
        # minutes: 5 (completion) or 30 (sensing), the estimate on real data (MovieLens: ~80 min
        # on one core; dmfcore.plan.make.Plan.nuclear_norm_runtime)
        runtime=lambda wc: PLAN.nuclear_norm_runtime(dict(wc.items())),
        # 2 GB, more for sensing matrices and the interior-point method's m x m Schur complement
        mem_mb=nuclear_norm_mem_mb,
    params:
        **PLAN.nuclear_norm_params,
        code=CODE["baselines"],
    script:
        "../scripts/min_nuclear_norm.py"


# Minimum nuclear norm solutions made together, one job per (problem, dataset, seed): those of
# experiments whose runs train in batches over n_obs (dmfcore.plan.make.SetBatch), solved one
# after another; each set's files and log are where min_nuclear_norm would write them.
for batch in PLAN.set_batches.values():
    if batch.rule != "min_nuclear_norm":
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
        group:
            "baselines"
        conda:
            "../../envs/dmf.yaml"
        threads: 1
        resources:
            runtime=PLAN.set_batch_runtime(batch),
            mem_mb=PLAN.set_batch_mem_mb(batch),
        params:
            **PLAN.nuclear_norm_params,
            members=batch.members(),
            code=CODE["baselines"],
        script:
            "../scripts/min_nuclear_norm_batch.py"


rule ground_truth_row:
    input:
        ground_truth="results/data/{dataset}/seed{seed}/ground_truth.npz",
        observations="results/data/{dataset}/seed{seed}/{problem}_n{n_obs}.npz",
    output:
        metrics="results/runs/{problem}/{dataset}/n{n_obs}/seed{seed}/ground_truth/metrics.json",
    log:
        "results/runs/{problem}/{dataset}/n{n_obs}/seed{seed}/ground_truth/run.log",
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=5,
        mem_mb=500,
    params:
        code=CODE["baselines"],
    script:
        "../scripts/ground_truth_row.py"


# Real data: predicting the training mean everywhere, and predicting 0 (the entries a depth-1
# run never moves), scored on the test set.
rule predictor_row:
    input:
        observations="results/data/{dataset}/seed{seed}/{problem}_n{n_obs}.npz",
    output:
        metrics="results/runs/{problem}/{dataset}/n{n_obs}/seed{seed}/{predictor}/metrics.json",
    log:
        "results/runs/{problem}/{dataset}/n{n_obs}/seed{seed}/{predictor}/run.log",
    wildcard_constraints:
        predictor="|".join(PREDICTORS),
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=5,
        mem_mb=1000,
    params:
        code=CODE["real_data"],
    script:
        "../scripts/predictor_row.py"
