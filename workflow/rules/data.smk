rule ground_truth:
    output:
        "results/data/{d1}x{d2}_rank{rank}/seed{seed}/ground_truth.npz",
    log:
        "results/data/{d1}x{d2}_rank{rank}/seed{seed}/ground_truth.log",
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=5,
        mem_mb=500,
    params:
        code=CODE,
    script:
        "../scripts/ground_truth.py"


rule observations:
    input:
        ground_truth="results/data/{d1}x{d2}_rank{rank}/seed{seed}/ground_truth.npz",
    output:
        "results/data/{d1}x{d2}_rank{rank}/seed{seed}/{problem}_n{n_obs}.npz",
    log:
        "results/data/{d1}x{d2}_rank{rank}/seed{seed}/{problem}_n{n_obs}.log",
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=5,
        # sensing stores m x d1 x d2 measurement matrices
        mem_mb=lambda wc: 500
        + (
            int(wc.n_obs) * int(wc.d1) * int(wc.d2) * 12 // 2**20
            if wc.problem == "sensing"
            else 0
        ),
    params:
        code=CODE,
    script:
        "../scripts/observations.py"
