rule min_nuclear_norm:
    input:
        ground_truth="results/data/{d1}x{d2}_rank{rank}/seed{seed}/ground_truth.npz",
        observations="results/data/{d1}x{d2}_rank{rank}/seed{seed}/{problem}_n{n_obs}.npz",
    output:
        matrix="results/runs/{problem}/{d1}x{d2}_rank{rank}/n{n_obs}/seed{seed}/nuclear_norm/matrix.npz",
        metrics="results/runs/{problem}/{d1}x{d2}_rank{rank}/n{n_obs}/seed{seed}/nuclear_norm/metrics.json",
    log:
        "results/runs/{problem}/{d1}x{d2}_rank{rank}/n{n_obs}/seed{seed}/nuclear_norm/run.log",
    conda:
        "../../envs/dmf.yaml"
    threads: 1
    resources:
        runtime=30,
        mem_mb=2000,
    params:
        tol=NUCLEAR_NORM_TOLERANCE,
        code=CODE,
    script:
        "../scripts/min_nuclear_norm.py"


rule ground_truth_row:
    input:
        ground_truth="results/data/{d1}x{d2}_rank{rank}/seed{seed}/ground_truth.npz",
        observations="results/data/{d1}x{d2}_rank{rank}/seed{seed}/{problem}_n{n_obs}.npz",
    output:
        metrics="results/runs/{problem}/{d1}x{d2}_rank{rank}/n{n_obs}/seed{seed}/ground_truth/metrics.json",
    log:
        "results/runs/{problem}/{d1}x{d2}_rank{rank}/n{n_obs}/seed{seed}/ground_truth/run.log",
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=5,
        mem_mb=500,
    params:
        code=CODE,
    script:
        "../scripts/ground_truth_row.py"
