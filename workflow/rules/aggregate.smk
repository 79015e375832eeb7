rule aggregate:
    input:
        metrics_files,
    output:
        "results/tables/{experiment}.parquet",
    log:
        "results/logs/aggregate/{experiment}.log",
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=5,
        mem_mb=1000,
    script:
        "../scripts/aggregate.py"
