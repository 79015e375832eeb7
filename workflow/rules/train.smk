rule train_dmf:
    input:
        unpack(data_inputs),
    output:
        matrix=f"{RUN_DIR}/matrix.npz",
        metrics=f"{RUN_DIR}/metrics.json",
        trajectory=f"{RUN_DIR}/trajectory.parquet",
    log:
        f"{RUN_DIR}/run.log",
    # before the baselines: training jobs are the longest (and a GPU idles until they start)
    priority: 1
    # On a cluster (profiles/slurm) completion runs on the CPU take seconds and go out in
    # bundles; sensing, GPU and real-data runs take minutes to hours and are submitted one by one.
    group:
        lambda wc: "train_bundle" if PLAN.bundled(dict(wc.items())) else None
    conda:
        "../../envs/dmf.yaml"
    threads: 1
    resources:
        # minutes: 5 for completion on the CPU, 60 for sensing and GPU runs, the estimate on
        # real data (hours on the CPU; dmfcore.plan.make.Plan.train_runtime)
        runtime=lambda wc: PLAN.train_runtime(dict(wc.items())),
        # one GPU for the runs on a CUDA device (the SLURM profile asks for it with --gpus)
        gpu=lambda wc: 1 if wc.device.startswith("cuda") else 0,
        mem_mb=lambda wc: 1000 + sensing_mem_mb(wc),
    params:
        settings=training_settings,
        code=CODE["runs"],
    script:
        "../scripts/train_dmf.py"


# Batched training: one rule per batch (its outputs are its runs' files, which Snakemake then
# builds with this rule rather than train_dmf, whose outputs are patterns), named by a hash of
# what its runs share (dmfcore.plan.make.Batch).
for batch in PLAN.batches.values():

    rule:
        name:
            batch.name
        input:
            batch.inputs(),
        output:
            batch.outputs(),
        log:
            batch.logs(),
        priority: 1
        conda:
            "../../envs/dmf.yaml"
        threads: 1
        resources:
            runtime=60,
            gpu=1 if batch.device.startswith("cuda") else 0,
            mem_mb=lambda wc, input: 1000 + 2 * input.size_mb,
        params:
            members=batch.members(),
            settings=batch.recording,
            code=CODE["runs"],
        script:
            "../scripts/train_batch.py"
