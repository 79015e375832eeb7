rule aggregate:
    input:
        metrics=metrics_files,
        trajectories=trajectory_files,
    output:
        table="results/tables/{experiment}.parquet",
        trajectories="results/tables/{experiment}_trajectories.parquet",
    log:
        "results/logs/aggregate/{experiment}.log",
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=5,
        mem_mb=1000,
    script:
        "../scripts/aggregate.py"
