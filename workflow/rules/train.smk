rule train_dmf:
    input:
        unpack(data_inputs),
    output:
        matrix="results/runs/{problem}/{dataset}/n{n_obs}/seed{seed}/dmf_depth{depth}_{init}{init_scale}_{optimizer}_lr{lr}_stop{loss_threshold}_max{max_iters}_{device}_{dtype}/matrix.npz",
        metrics="results/runs/{problem}/{dataset}/n{n_obs}/seed{seed}/dmf_depth{depth}_{init}{init_scale}_{optimizer}_lr{lr}_stop{loss_threshold}_max{max_iters}_{device}_{dtype}/metrics.json",
        trajectory="results/runs/{problem}/{dataset}/n{n_obs}/seed{seed}/dmf_depth{depth}_{init}{init_scale}_{optimizer}_lr{lr}_stop{loss_threshold}_max{max_iters}_{device}_{dtype}/trajectory.parquet",
    log:
        "results/runs/{problem}/{dataset}/n{n_obs}/seed{seed}/dmf_depth{depth}_{init}{init_scale}_{optimizer}_lr{lr}_stop{loss_threshold}_max{max_iters}_{device}_{dtype}/run.log",
    # before the baselines: training jobs are the longest (and a GPU idles until they start)
    priority: 1
    # On a cluster (profiles/slurm) completion runs on the CPU take seconds and go out in
    # bundles; sensing and GPU runs take minutes and are submitted one by one.
    group:
        lambda wc: (
            "train_bundle"
            if wc.problem == "completion" and wc.device in ("cpu", "torch-cpu")
            else None
        )
    conda:
        "../../envs/dmf.yaml"
    threads: 1
    resources:
        runtime=60,
        # one GPU for the runs on a CUDA device (the SLURM profile asks for it with --gpus)
        gpu=lambda wc: 1 if wc.device.startswith("cuda") else 0,
        mem_mb=lambda wc: 1000 + sensing_mem_mb(wc),
    params:
        settings=training_settings,
        code=CODE["experiment"],
    script:
        "../scripts/train_dmf.py"


# Batched training: one rule per batch (its outputs are its runs' files, which Snakemake then
# builds with this rule rather than train_dmf, whose outputs are patterns). See BATCHES.
for index, (key, members) in enumerate(BATCHES.items()):

    rule:
        name:
            f"train_batch_{index}"
        input:
            sorted({path for run in members for path in data_paths(run).values()}),
        output:
            [
                f"{DMF_DIR.format(**run)}/{name}"
                for run in members
                for name in ("matrix.npz", "metrics.json", "trajectory.parquet")
            ],
        log:
            [f"{DMF_DIR.format(**run)}/run.log" for run in members],
        priority: 1
        conda:
            "../../envs/dmf.yaml"
        threads: 1
        resources:
            runtime=60,
            gpu=1 if dict(key)["device"].startswith("cuda") else 0,
            mem_mb=lambda wc, input: 1000 + 2 * input.size_mb,
        params:
            members=[{**run, **data_paths(run)} for run in members],
            settings=batch_settings(members),
            code=CODE["experiment"],
        script:
            "../scripts/train_batch.py"
