rule train_dmf:
    input:
        ground_truth="results/data/{d1}x{d2}_rank{rank}/seed{seed}/ground_truth.npz",
        observations="results/data/{d1}x{d2}_rank{rank}/seed{seed}/{problem}_n{n_obs}.npz",
    output:
        matrix="results/runs/{problem}/{d1}x{d2}_rank{rank}/n{n_obs}/seed{seed}/dmf_depth{depth}_{init}{init_scale}_{optimizer}_lr{lr}_stop{loss_threshold}_max{max_iters}_{device}_{dtype}/matrix.npz",
        metrics="results/runs/{problem}/{d1}x{d2}_rank{rank}/n{n_obs}/seed{seed}/dmf_depth{depth}_{init}{init_scale}_{optimizer}_lr{lr}_stop{loss_threshold}_max{max_iters}_{device}_{dtype}/metrics.json",
        trajectory="results/runs/{problem}/{d1}x{d2}_rank{rank}/n{n_obs}/seed{seed}/dmf_depth{depth}_{init}{init_scale}_{optimizer}_lr{lr}_stop{loss_threshold}_max{max_iters}_{device}_{dtype}/trajectory.parquet",
    log:
        "results/runs/{problem}/{d1}x{d2}_rank{rank}/n{n_obs}/seed{seed}/dmf_depth{depth}_{init}{init_scale}_{optimizer}_lr{lr}_stop{loss_threshold}_max{max_iters}_{device}_{dtype}/run.log",
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
        mem_mb=lambda wc: 1000
        + (
            int(wc.n_obs) * int(wc.d1) * int(wc.d2) * 12 // 2**20
            if wc.problem == "sensing"
            else 0
        ),
    params:
        settings=training_settings,
        code=CODE,
    script:
        "../scripts/train_dmf.py"
